"""Tests of the bot services."""
