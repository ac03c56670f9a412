"""The Slack surface of PushOps: `/push` routed to one module per subcommand.

To add a subcommand: write `commands/<name>.py` (or a package, as `commands/send/`) with
`SUBCOMMAND = Subcommand(name=const.SUB_X, handle=handle)` and list it in `SUBCOMMANDS` below;
if it has buttons or forms, give it a `register(app, services)` that adds those listeners and
list that in `REGISTRARS`.
"""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt.async_app import AsyncApp

from bot.const import SLASH_COMMAND
from bot.services import Services
from commands import (
    approvals,
    audit,
    cancel,
    diagnostics,
    dismiss,
    help,
    home,
    listing,
    me,
    notify,
    send,
    series,
    setup,
    status,
    user,
)
from commands.context import Subcommand
from commands.dispatch import build_listener
from commands.send import editing

SUBCOMMANDS: tuple[Subcommand, ...] = (
    help.SUBCOMMAND,
    send.SUBCOMMAND,
    cancel.SUBCOMMAND,
    editing.SUBCOMMAND,
    status.SUBCOMMAND,
    listing.SUBCOMMAND,
    series.SUBCOMMAND,
    me.SUBCOMMAND,
    user.SUBCOMMAND,
    audit.SUBCOMMAND,
    diagnostics.SUBCOMMAND,
    setup.SUBCOMMAND,
)
"""The subcommands `/push` routes to; one not listed here answers with the help."""

REGISTRARS: tuple[Callable[[AsyncApp, Services], None], ...] = (
    audit.register,
    cancel.register,
    dismiss.register,
    home.register,
    notify.register,
    send.register,
    editing.register,
    status.register,
    listing.register,
    series.register,
    approvals.register,
    setup.register,
)
"""Modules' `register(app, services)`: listeners for their buttons, forms and events."""


def register(app: AsyncApp, services: Services) -> None:
    """Add every listener of the Slack surface to `app`."""
    app.command(SLASH_COMMAND)(build_listener(SUBCOMMANDS, services))
    for register_module in REGISTRARS:
        register_module(app, services)
