"""Pytest fixtures: database (filled in by its owner)."""
