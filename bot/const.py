"""Every identifier the Slack surface shares: subcommands, callback, action and block ids."""

from __future__ import annotations

from typing import Final

SLASH_COMMAND: Final = "/push"
