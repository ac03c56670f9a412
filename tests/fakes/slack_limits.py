"""Slack's Web API rate limits, as the fake Slack enforces them once a test turns them on.

Slack limits each app per method per workspace (https://api.slack.com/apis/rate-limits):
Tier 2 about 20 calls a minute, Tier 3 about 50 (`chat.update`, `conversations.open`), Tier 4
about 100 (`chat.postEphemeral`, `users.info`, `views.*`); `chat.postMessage` has its own
terms, about one message a second per channel with short bursts allowed, under a workspace-wide
limit of "several hundred messages per minute". Over a limit Slack answers HTTP 429,
`{"ok": false, "error": "ratelimited"}`, with `Retry-After` in whole seconds.

Each limit is a sliding window: at most `calls` accepted in any `seconds`-long stretch, time
being real (`time.monotonic`). Refused calls do not count. A test that cannot wait minutes
scales the limits: `SLACK_LIMITS.scaled(window=0.1)` keeps every rate but shortens the windows
tenfold (with a tenth of the calls each), `scaled(speed=20)` makes every limit twenty times
faster. `Retry-After` stays a whole number of seconds, at least 1, as Slack sends it.

The limiter also remembers every refused call: a call repeated (same token, method and
arguments) before the `Retry-After` it was given ran out is an early retry, which the
`fake_slack` fixture fails a test for.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

POST_MESSAGE = "chat.postMessage"


@dataclass(frozen=True)
class Window:
    """At most `calls` accepted in any stretch of `seconds` (a sliding window)."""

    calls: int
    seconds: float

    def scaled(self, *, window: float, speed: float) -> Window:
        """`window` times as long with as many times the calls (the same rate, at least one
        call), then `speed` times faster."""
        calls = max(1, round(self.calls * window))
        return Window(calls, self.seconds * calls / self.calls / speed)


TIER_2 = Window(20, 60.0)
TIER_3 = Window(50, 60.0)
TIER_4 = Window(100, 60.0)
# chat.postMessage, "1 per second, short bursts >1 allowed": three at once, one a second after.
POSTS_PER_CHANNEL = Window(3, 3.0)


@dataclass(frozen=True)
class RateLimits:
    """Which method is held to which window, per workspace, and `chat.postMessage`'s own."""

    methods: Mapping[str, Window]
    """Per method per workspace."""
    posts_per_channel: Window = POSTS_PER_CHANNEL
    """`chat.postMessage` per channel (a DM is a channel too)."""
    posts_per_workspace: Window | None = None
    """`chat.postMessage` across the workspace, when limited."""

    def scaled(self, *, window: float = 1.0, speed: float = 1.0) -> RateLimits:
        """Every window `window` times as long, with proportionally as many calls (so the
        same rates, with shorter bursts), and `speed` times faster."""

        def scale(limit: Window) -> Window:
            return limit.scaled(window=window, speed=speed)

        return replace(
            self,
            methods={method: scale(limit) for method, limit in self.methods.items()},
            posts_per_channel=scale(self.posts_per_channel),
            posts_per_workspace=(
                scale(self.posts_per_workspace) if self.posts_per_workspace else None
            ),
        )


SLACK_LIMITS = RateLimits(
    methods={
        "chat.update": TIER_3,
        "conversations.open": TIER_3,
        "chat.postEphemeral": TIER_4,
        "users.info": TIER_4,
        "views.open": TIER_4,
        "views.update": TIER_4,
        "views.push": TIER_4,
        "views.publish": TIER_4,
        "usergroups.users.list": TIER_2,
    },
    posts_per_channel=POSTS_PER_CHANNEL,
    # "Several hundred messages per minute": the low end, to be as strict as Slack may be.
    posts_per_workspace=Window(300, 60.0),
)
"""Slack's documented limits at their real speed."""


@dataclass(frozen=True)
class EarlyRetry:
    """A call repeated `early` seconds before the `Retry-After` of its 429 ran out."""

    method: str
    args: dict[str, Any]
    early: float

    def __str__(self) -> str:
        return f"{self.method} repeated {self.early:.2f} s before its Retry-After ran out"


@dataclass
class _Bucket:
    limit: Window
    accepted: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds until this bucket accepts a call (0 when it does now)."""
        while self.accepted and self.accepted[0] <= now - self.limit.seconds:
            self.accepted.popleft()
        if len(self.accepted) < self.limit.calls:
            return 0.0
        return self.accepted[0] + self.limit.seconds - now


class Limiter:
    """Slack's verdict on each call under `limits`: accepted, or `Retry-After` seconds.

    Not thread-safe: the fake calls it under its own lock.
    """

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._refused: dict[str, float] = {}  # call's identity -> when it may come again
        self.early_retries: list[EarlyRetry] = []

    def admit(self, team_id: str, token: str, method: str, args: dict[str, Any]) -> int | None:
        """None when Slack takes the call now (it is counted); else the `Retry-After` seconds
        Slack answers with (the call is not counted)."""
        now = self._clock()
        identity = _identity(token, method, args)
        self._note_early(identity, method, args, now)
        buckets = self._buckets_of(team_id, method, args)
        wait = max((bucket.wait(now) for bucket in buckets), default=0.0)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            self._refused[identity] = now + retry_after
            return retry_after
        for bucket in buckets:
            bucket.accepted.append(now)
        return None

    def _note_early(self, identity: str, method: str, args: dict[str, Any], now: float) -> None:
        not_before = self._refused.pop(identity, None)
        if not_before is not None and now < not_before:
            self.early_retries.append(EarlyRetry(method, args, not_before - now))

    def _buckets_of(self, team_id: str, method: str, args: dict[str, Any]) -> list[_Bucket]:
        limits: list[tuple[tuple[str, ...], Window]] = []
        if method in self.limits.methods:
            limits.append(((team_id, method), self.limits.methods[method]))
        if method == POST_MESSAGE:
            channel = str(args.get("channel", ""))
            limits.append(((team_id, method, channel), self.limits.posts_per_channel))
            if self.limits.posts_per_workspace is not None:
                limits.append(((team_id, method), self.limits.posts_per_workspace))
        return [self._bucket(key, limit) for key, limit in limits]

    def _bucket(self, key: tuple[str, ...], limit: Window) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit)
        return bucket


def _identity(token: str, method: str, args: dict[str, Any]) -> str:
    return json.dumps([token, method, args], sort_keys=True, default=str)
