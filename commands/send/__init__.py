"""`/push send`: the one-line command (`command`), its grammar (`grammar`), the compose form
(`form`), who asks (`requester`), and what every way of sending shares (`storing`)."""

from __future__ import annotations

from commands.send.command import SUBCOMMAND, register

__all__ = ["SUBCOMMAND", "register"]
