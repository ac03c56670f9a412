"""The Slack surface of PushOps: one module per `/push` subcommand."""
