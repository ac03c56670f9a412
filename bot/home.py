"""The Home tab's service: what a person's Home shows, and when to publish it again.

`HomeBoard.read` gathers the sends of one person's Home (their own yet to go out, those
waiting for their approval, the workspace's recent ones) with how many there are in all, so
the view can say "and 37 more". `HomeBoard` also watches the Homes this process published:
every `HomePolicy.poll` seconds it reads, in one query per workspace, the states of the sends
they show, and asks for those whose sends moved to be published again; whichever process
changed the send, the Home follows. Publishing is the Slack side's (`commands.home`): nothing
here builds Block Kit or calls Slack.

Slack's `views.publish` is a Tier 4 method (100+ calls a minute per workspace). The board
keeps within that, and within `HomePolicy.per_user` for one person, with a `Pacer`; a
refresh that would have to wait is put off, never dropped, and several changes waiting for
one Home make one publish (debounce).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from bot.slack_limits import TIER_4, Limit, Paced, Pacer, SlackLimits
from storage import home as queries
from storage import queries as sends_queries
from storage.db import Database
from storage.models import Send, SendState

log = logging.getLogger(__name__)

PUBLISH: Final = "views.publish"
UPCOMING: Final = (SendState.PENDING_APPROVAL, SendState.SCHEDULED, SendState.SENDING)
"""A person's sends yet to go out, as their Home lists them."""
FINISHED: Final = (
    SendState.SENT,
    SendState.FAILED,
    SendState.CANCELLED,
    SendState.REJECTED,
    SendState.EXPIRED,
    SendState.MISSED,
)
"""The workspace's sends that ended, as its Homes list them."""


@dataclass(frozen=True)
class HomePolicy:
    """How the Homes this process published are kept current.

    Attributes:
        poll: seconds between two looks at the states of the sends shown.
        per_user: at most this many publishes of one person's Home (Slack's method is Tier
            4 for the workspace; one person's Home needs far fewer).
        watch_for: seconds a Home is kept current after it was last opened.
    """

    poll: float = 2.0
    per_user: Limit = Limit(5, 10.0)
    watch_for: float = 30 * 60.0

    def limits(self) -> SlackLimits:
        """`views.publish` paced per workspace (Tier 4) and per person (`per_user`)."""
        return SlackLimits(per_workspace={PUBLISH: TIER_4}, per_channel={PUBLISH: self.per_user})


@dataclass(frozen=True)
class HomeLimits:
    """How many of each list a Home shows (the view's blocks stay within Slack's 100)."""

    mine: int = 12
    approvals: int = 8
    recent: int = 15


@dataclass(frozen=True)
class HomeSends:
    """What one person's Home shows of sends, and how many there are of each in all."""

    mine: list[Send]
    mine_total: int
    approvals: list[Send]
    approvals_total: int
    recent: list[Send]
    recent_total: int

    def shown(self) -> dict[uuid.UUID, SendState]:
        """Each send shown, and its state now."""
        return {s.id: s.state for s in (*self.mine, *self.approvals, *self.recent)}


Key = tuple[str, str]
"""(team id, user id): one person's Home."""

Publish = Callable[[str, str], Awaitable[None]]
"""Publishes a person's Home again (team id, user id)."""


@dataclass
class _Watched:
    states: dict[uuid.UUID, SendState]
    until: float
    due: bool = False  # a send shown moved; publish when the pacer allows


@dataclass
class HomeBoard:
    """Reads the Homes, and keeps the published ones current (see the module's docstring)."""

    database: Database
    policy: HomePolicy = field(default_factory=HomePolicy)
    limits: HomeLimits = field(default_factory=HomeLimits)
    clock: Callable[[], float] = time.monotonic
    _watched: dict[Key, _Watched] = field(default_factory=dict)
    _pacer: Pacer | None = None
    _task: asyncio.Task[None] | None = None

    # --- reading -------------------------------------------------------------------------

    async def read(self, *, team_id: str, user_id: str, approver: bool) -> HomeSends:
        """The sends of `user_id`'s Home in `team_id` (approvals only for an `approver`)."""
        limits = self.limits
        async with self.database.sessions() as session:
            mine = await sends_queries.list_sends(
                session=session, team_id=team_id, states=UPCOMING, requester_id=user_id,
                order="due", limit=limits.mine,
            )  # fmt: skip
            mine_total = await queries.count_sends(
                session=session, team_id=team_id, states=UPCOMING, requester_id=user_id
            )
            approvals: tuple[list[Send], int] = ([], 0)
            if approver:
                approvals = await queries.awaiting_approval(
                    session=session, team_id=team_id, approver_id=user_id, limit=limits.approvals
                )
            recent = await sends_queries.list_sends(
                session=session, team_id=team_id, states=FINISHED, order="finished",
                limit=limits.recent,
            )  # fmt: skip
            recent_total = await queries.count_sends(
                session=session, team_id=team_id, states=FINISHED
            )
        return HomeSends(mine, mine_total, *approvals, recent, recent_total)

    # --- publishing in pace ---------------------------------------------------------------

    def pacer(self) -> Pacer:
        """The pacer of `views.publish` calls (made on first use, with the policy then)."""
        if self._pacer is None:
            self._pacer = Pacer(self.policy.limits(), clock=self.clock)
        return self._pacer

    def slot(self, team_id: str, user_id: str, *, within: float) -> float:
        """Reserve a publish of this Home: the seconds to wait first. `Paced` when longer
        than `within`."""
        return self.pacer().reserve(team_id, PUBLISH, user_id, within=within)

    def published(self, team_id: str, user_id: str, states: Mapping[uuid.UUID, SendState]) -> None:
        """This Home was just published showing sends in `states`: keep it current."""
        self._watched[(team_id, user_id)] = _Watched(
            dict(states), until=self.clock() + self.policy.watch_for
        )

    def opened(self, team_id: str, user_id: str) -> None:
        """The person opened their Home: keep watching it for `watch_for` from now."""
        watched = self._watched.get((team_id, user_id))
        if watched is not None:
            watched.until = self.clock() + self.policy.watch_for

    # --- the watch ------------------------------------------------------------------------

    def start(self, publish: Publish) -> None:
        """Look at the watched Homes every `poll` seconds until `stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(publish))

    async def stop(self) -> None:
        """Stop watching (a publish under way is cancelled: the next open publishes)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, publish: Publish) -> None:
        while True:
            await asyncio.sleep(self.policy.poll)
            try:
                await self.look(publish)
            except SQLAlchemyError as error:  # the database hiccups: look again next round
                log.info("home tabs not checked: %s", type(error).__name__)

    async def look(self, publish: Publish) -> None:
        """One round: mark the Homes whose sends moved, publish those the pacer allows."""
        self._forget_expired()
        await self._mark_moved()
        for key, watched in list(self._watched.items()):
            if watched.due and self._may_publish(key):
                watched.due = False
                await publish(*key)

    def _forget_expired(self) -> None:
        now = self.clock()
        for key in [k for k, w in self._watched.items() if w.until <= now]:
            del self._watched[key]

    async def _mark_moved(self) -> None:
        by_team: dict[str, set[uuid.UUID]] = {}
        for (team_id, _), watched in self._watched.items():
            by_team.setdefault(team_id, set()).update(watched.states)
        for team_id, ids in by_team.items():
            async with self.database.sessions() as session:
                now = await queries.send_states(session=session, team_id=team_id, send_ids=ids)
            for (team, _), watched in self._watched.items():
                if team == team_id and any(now.get(i) != s for i, s in watched.states.items()):
                    watched.due = True

    def _may_publish(self, key: Key) -> bool:
        try:
            wait = self.slot(*key, within=0.0)
        except Paced:
            return False  # still due: the next round tries again
        return wait <= 0.0
