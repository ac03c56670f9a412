"""Pytest fixtures: slack (filled in by its owner)."""
