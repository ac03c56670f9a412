"""When the Slack outbox is behind, news of many sends becomes one digest.

Slack takes about one message a second per channel and 50 updates a minute per workspace, so
a burst of sends ending together (a team's 9:00 announcements) leaves the outbox behind. The
drainer (`bot.outbox.OutboxDrainer`) calls a `Coalescer` before each claim; it looks at what
waits (`storage.digests`) and, in one transaction each:

- a requester with several "went out" DMs waiting a while gets one DM listing those sends
  instead (failures, misses, cancels and the like stay messages of their own: they ask for
  action);
- a log channel where several sends' final states have waited a while (`DigestPolicy`) gets
  one message listing them ("12 sends went out at 09:00 UTC: …"), at most one per channel a
  minute; each send's own log message is still brought to its final state when the queue
  allows, and is named in no later digest.

A digest is a row of purpose `digest` whose payload lists the sends' facts (`items`); the
Slack side renders it when it delivers it (`commands.outgoing`, `commands.views.digests`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from storage import digests
from storage.db import Database
from storage.digests import DIGEST, Piled, Waiting
from storage.models import OutboxKind, SendState, utcnow
from storage.outbox import OutboxEntry

__all__ = ["DIGEST", "FOR_LOG", "FOR_REQUESTER", "Coalescer", "DigestPolicy"]

log = logging.getLogger(__name__)

WENT_OUT: Final = "delivered"
"""The purpose of the requester's DM telling that a send went out (`commands.notify`)."""
LOG: Final = "log"
"""The purpose of a send's own log-channel message."""
FOR_REQUESTER: Final = "requester"
FOR_LOG: Final = "log"
"""What a digest's payload says it is (`payload["digest"]`)."""

FINAL: Final = frozenset(
    state.value
    for state in (
        SendState.SENT,
        SendState.FAILED,
        SendState.CANCELLED,
        SendState.MISSED,
        SendState.REJECTED,
        SendState.EXPIRED,
    )
)
"""States a log digest tells: the send's story has ended."""

PRIORITY: Final = 1
"""A digest goes before the routine messages it sums up (`commands.notify.NORMAL`)."""


@dataclass(frozen=True)
class DigestPolicy:
    """When news becomes a digest.

    every: seconds between two looks at what waits.
    requester_minimum: "went out" DMs waiting for one requester that make a digest.
    requester_gather: seconds the oldest of them has waited (an outbox that keeps up sends
        each DM alone, at once).
    log_minimum: final states waiting in one log channel that make a digest.
    log_gather: seconds a log channel's pile is left to grow before its digest.
    log_every: seconds between two digests in one log channel.
    """

    every: float = 0.5
    requester_minimum: int = 3
    requester_gather: float = 2.0
    log_minimum: int = 5
    log_gather: float = 3.0
    log_every: float = 60.0


class Coalescer:
    """Makes digests of what waits in the outbox (see the module's docstring); called by the
    drainer before each claim, it looks at most every `DigestPolicy.every` seconds."""

    def __init__(
        self,
        database: Database,
        *,
        policy: DigestPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self.policy = policy or DigestPolicy()
        self._clock = clock
        self._monotonic = monotonic
        self._looked = float("-inf")
        self._piling: dict[tuple[str, str], float] = {}  # log channel -> first seen piling

    async def __call__(self) -> int:
        """Make the digests due now; how many messages they tell (0 between looks)."""
        if self._monotonic() - self._looked < self.policy.every:
            return 0
        self._looked = self._monotonic()
        try:
            return await self._requesters() + await self._logs()
        except SQLAlchemyError as error:  # the database hiccups: the next look tries again
            log.warning("could not make digests: %s", type(error).__name__)
            return 0

    async def _requesters(self) -> int:
        told = 0
        waited = timedelta(seconds=self.policy.requester_gather)
        for pile in await self._piles(OutboxKind.DM, WENT_OUT, self.policy.requester_minimum):
            if self._clock() - pile.oldest >= waited:
                told += await self._coalesce(pile, OutboxKind.DM, WENT_OUT, self._for_requester)
        return told

    async def _logs(self) -> int:
        now = self._monotonic()
        piles = await self._piles(OutboxKind.MESSAGE, LOG, self.policy.log_minimum)
        seen = {(pile.team_id, pile.destination) for pile in piles}
        self._piling = {key: at for key, at in self._piling.items() if key in seen}
        told = 0
        for pile in piles:
            key = (pile.team_id, pile.destination)
            since = self._piling.setdefault(key, now)
            if now - since < self.policy.log_gather or await self._digested_lately(pile):
                continue
            made = await self._coalesce(pile, OutboxKind.MESSAGE, LOG, self._for_log)
            if made:
                self._piling.pop(key, None)
            told += made
        return told

    async def _piles(self, kind: OutboxKind, purpose: str, minimum: int) -> list[Piled]:
        async with self._database.sessions() as session:
            return await digests.piles(
                session=session, kind=kind, purpose=purpose, minimum=minimum, now=self._clock()
            )

    async def _digested_lately(self, pile: Piled) -> bool:
        async with self._database.sessions() as session:
            last = await digests.last_digest_at(
                session=session, team_id=pile.team_id, destination=pile.destination
            )
        return last is not None and self._clock() - last < timedelta(seconds=self.policy.log_every)

    async def _coalesce(
        self,
        pile: Piled,
        kind: OutboxKind,
        purpose: str,
        make: Callable[[Piled, Sequence[Waiting]], tuple[OutboxEntry, Sequence[Waiting]] | None],
    ) -> int:
        told = await digests.coalesce(
            session_factory=self._database.sessions,
            team_id=pile.team_id,
            destination=pile.destination,
            kind=kind,
            purpose=purpose,
            now=self._clock(),
            digest=lambda waiting: make(pile, waiting),
            supersede=kind == OutboxKind.DM,
        )
        if told:
            log.info("%d messages to %s told in one digest", told, pile.destination)
        return told

    def _for_requester(
        self, pile: Piled, waiting: Sequence[Waiting]
    ) -> tuple[OutboxEntry, Sequence[Waiting]] | None:
        if len(waiting) < self.policy.requester_minimum:
            return None
        return _entry(pile, OutboxKind.DM, FOR_REQUESTER, waiting), waiting

    def _for_log(
        self, pile: Piled, waiting: Sequence[Waiting]
    ) -> tuple[OutboxEntry, Sequence[Waiting]] | None:
        ended = [item for item in waiting if item.facts.get("state") in FINAL]
        if len(ended) < self.policy.log_minimum:
            return None
        return _entry(pile, OutboxKind.MESSAGE, FOR_LOG, ended), ended


def _entry(pile: Piled, kind: OutboxKind, audience: str, told: Sequence[Waiting]) -> OutboxEntry:
    # In the order the sends ended (then by id), whatever order their messages were owed in.
    items: list[dict[str, Any]] = sorted(
        (item.facts for item in told),
        key=lambda facts: (str(facts.get("ended_at") or ""), str(facts.get("short_id") or "")),
    )
    return OutboxEntry(
        team_id=pile.team_id,
        key=f"{DIGEST}:{pile.destination}:{uuid.uuid4()}",
        kind=kind,
        purpose=DIGEST,
        destination=pile.destination,
        payload={"digest": audience, "items": items},
        priority=PRIORITY,
    )
