"""Persistence for PushOps: models, queries, encryption of secrets, migrations."""
