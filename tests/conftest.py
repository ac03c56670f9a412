"""Shared pytest set-up: fixtures come from the plugins in tests/plugins/."""

pytest_plugins = [
    "tests.plugins.onesignal",
    "tests.plugins.database",
    "tests.plugins.slack",
]
