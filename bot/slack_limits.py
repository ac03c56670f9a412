"""Slack's rate limits in one place, and the `Pacer` that keeps the outbox's calls within them.

Slack documents its Web API limits per method tier, per workspace (Tier 3: about 50 calls a
minute, `chat.update`, `conversations.open`; Tier 4: about 100, `chat.postEphemeral`,
`users.info`, `views.*`), and `chat.postMessage` per channel (about one message a second,
short bursts allowed). Over a limit Slack answers HTTP 429 with `Retry-After`.

The pacer keeps each limit as a sliding window of reserved call times: a call waits until
every window holding it has room, never sooner than a `Retry-After` Slack gave for its
bucket; once a bucket is full, calls wait their turn first come, first served. Each process
paces its own calls; several processes writing to one workspace share its limits unseen, and
Slack's 429s (waited out) pace them then.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True)
class Limit:
    """At most `calls` calls in any `per` seconds."""

    calls: int
    per: float


TIER_3: Final = Limit(50, 60.0)
TIER_4: Final = Limit(100, 60.0)
POSTS_PER_CHANNEL: Final = Limit(1, 1.0)
POSTS_PER_WORKSPACE: Final = Limit(300, 60.0)  # "several hundred a minute"

MARGIN: Final = 0.05
"""Seconds added to every window: the two clocks (ours, Slack's) never agree to the millisecond."""


@dataclass(frozen=True)
class SlackLimits:
    """Which limits pace which Web API method: per workspace, and per channel (the call's
    `channel` argument) for the methods in `per_channel`; a call waits for both."""

    per_workspace: Mapping[str, Limit]
    per_channel: Mapping[str, Limit]

    def scaled(self, *, speed: float) -> SlackLimits:
        """The same limits with every window `speed` times shorter (tests, benchmarks)."""

        def faster(limits: Mapping[str, Limit]) -> dict[str, Limit]:
            return {m: Limit(lim.calls, lim.per / speed) for m, lim in limits.items()}

        return SlackLimits(faster(self.per_workspace), faster(self.per_channel))


SLACK_LIMITS: Final = SlackLimits(
    per_workspace={
        "chat.postMessage": POSTS_PER_WORKSPACE,
        "chat.update": TIER_3,
        "conversations.open": TIER_3,
        "chat.postEphemeral": TIER_4,
        "users.info": TIER_4,
        "views.publish": TIER_4,
        "views.update": TIER_4,
    },
    per_channel={"chat.postMessage": POSTS_PER_CHANNEL},
)
"""Slack's documented limits (https://api.slack.com/docs/rate-limits)."""


class Paced(Exception):
    """The call would have to wait longer than the caller may: try again in `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paced for {seconds:.2f} s")
        self.seconds = seconds


@dataclass
class _Bucket:
    limit: Limit
    times: list[float] = field(default_factory=list)  # reserved call times, ascending
    blocked_until: float = 0.0

    def next_slot(self, now: float) -> float:
        """The earliest moment a call may be made, given the calls reserved already."""
        span = self.limit.per + MARGIN
        del self.times[: bisect.bisect_right(self.times, now - span)]
        start = max(now, self.blocked_until)
        around = bisect.bisect_right(self.times, start + span) - bisect.bisect_left(
            self.times, start - span
        )
        if around < self.limit.calls:  # every window holding `start` has room
            return start
        slot = max(start, self.times[-1])  # else after the calls already waiting
        if len(self.times) >= self.limit.calls:
            slot = max(slot, self.times[-self.limit.calls] + span)
        return slot

    def take(self, slot: float) -> None:
        bisect.insort(self.times, slot)


class Pacer:
    """Waits (reserved in turn) before each Slack call so that every limit holds."""

    def __init__(
        self, limits: SlackLimits = SLACK_LIMITS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def reserve(self, team_id: str, method: str, channel: str | None, *, within: float) -> float:
        """Reserve a call of `method`: the seconds to wait before making it.

        Raises `Paced` (reserving nothing) when that would be more than `within` seconds.
        """
        buckets = self._buckets_of(team_id, method, channel)
        if not buckets:
            return 0.0
        now = self._clock()
        slot = max(bucket.next_slot(now) for bucket in buckets)
        if slot - now > within:
            raise Paced(slot - now)
        for bucket in buckets:
            bucket.take(slot)
        return slot - now

    def blocked(self, team_id: str, method: str, channel: str | None, seconds: float) -> None:
        """Slack answered 429 with `Retry-After: seconds`: no call of that method (in that
        channel, for a per-channel method) before then."""
        buckets = self._buckets_of(team_id, method, channel)
        if channel and method in self._limits.per_channel:
            buckets = buckets[:1]  # the channel's, not the whole workspace's
        if not buckets:
            buckets = [self._bucket((team_id, "method", method), Limit(1_000_000, 1.0))]
        until = self._clock() + seconds
        for bucket in buckets:
            bucket.blocked_until = max(bucket.blocked_until, until)

    def busy_channels(self, *, within: float) -> set[str]:
        """Channels whose next post would wait longer than `within` seconds (idle buckets
        are forgotten on the way)."""
        now = self._clock()
        busy: set[str] = set()
        for key, bucket in list(self._buckets.items()):
            slot = bucket.next_slot(now)
            if not bucket.times and bucket.blocked_until <= now:
                del self._buckets[key]
            elif key[1] == "channel" and slot - now > within:
                busy.add(key[2])
        return busy

    def _buckets_of(self, team_id: str, method: str, channel: str | None) -> list[_Bucket]:
        buckets = []
        if channel and method in self._limits.per_channel:
            limit = self._limits.per_channel[method]
            buckets.append(self._bucket((team_id, "channel", channel), limit))
        if method in self._limits.per_workspace:
            limit = self._limits.per_workspace[method]
            buckets.append(self._bucket((team_id, "method", method), limit))
        return buckets

    def _bucket(self, key: tuple[str, str, str], limit: Limit) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit)
        return bucket
