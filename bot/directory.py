"""What Slack said about people and user groups, kept briefly by one process.

`commands/access.py` asks Slack (`users.info`, `usergroups.users.list`) and keeps the answers
here; the directory is built with the services and handed down with them, so each process (and
each test's app) has its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.cache import Expiring


@dataclass(frozen=True)
class UserFacts:
    """What Slack says of a person (`users.info`): workspace admin or owner, guest, time zone.

    `timezone` is None when unknown: times are then read as UTC. `asked_at` is when Slack
    said it (`time.monotonic`), 0 for an answer that is no answer (Slack trouble).
    """

    is_admin: bool = False
    timezone: str | None = None
    is_guest: bool = False
    asked_at: float = 0.0


@dataclass(eq=False)
class SlackDirectory:
    """Slack's answers by (team id, user id) and (team id, user group id)."""

    users: Expiring[tuple[str, str], UserFacts] = field(default_factory=Expiring)
    groups: Expiring[tuple[str, str], frozenset[str]] = field(default_factory=Expiring)
