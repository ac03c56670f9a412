"""Pytest fixtures: onesignal (filled in by its owner)."""
