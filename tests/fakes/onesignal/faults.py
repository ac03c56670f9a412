"""Fault injection: latency, status sequences, dropped connections, held requests, and late
answers (the request served, its answer delayed or held: what a client that timed out
cannot tell from a request that never arrived).

Tests configure faults from their own thread; the server thread consults them per request.
Every rule matches on an HTTP method and/or a path prefix (None matches anything).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Match:
    method: str | None
    path: str | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or path.startswith(self.path)


@dataclass(slots=True)
class _Latency:
    match: _Match
    seconds: float


@dataclass(slots=True)
class _Statuses:
    match: _Match
    codes: deque[int]
    retry_after: float | None


@dataclass(slots=True)
class _Drops:
    match: _Match
    remaining: int


@dataclass(slots=True)
class StatusFault:
    """What the server must answer instead of serving a request."""

    status: int
    retry_after: float | None


class Hold:
    """Requests matching this hold wait in the server until `release()`.

    `arrived` is set as soon as one matching request is waiting; `arrivals` counts them.
    After `release()` the held requests (and any later matching one) are served normally.
    """

    def __init__(self, match: _Match) -> None:
        self._match = match
        self.arrived = threading.Event()
        self.released = threading.Event()
        self.arrivals = 0

    def release(self) -> None:
        """Let every held request through, and any later one."""
        self.released.set()

    def matches(self, method: str, path: str) -> bool:
        return self._match.matches(method, path)


@dataclass(slots=True)
class Decision:
    """Everything the faults say about one request, taken at once under the lock."""

    latency: float = 0.0
    holds: list[Hold] = field(default_factory=list)


class Faults:
    """Per-test fault injection; `clear()` (also run by `reset()`) removes every fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[_Latency] = []
        self._statuses: list[_Statuses] = []
        self._drops: list[_Drops] = []
        self._holds: list[Hold] = []
        self._late: list[_Latency] = []
        self._answer_holds: list[Hold] = []
        # Read without the lock on the hot path: a stale False only delays a fault that a
        # test set concurrently with a request already in flight.
        self.active = False

    def latency(
        self, seconds: float, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Delay every matching request by `seconds` until cleared (delays add up)."""
        with self._lock:
            self._latencies.append(_Latency(_match(method, path), seconds))
            self.active = True

    def statuses(
        self,
        codes: list[int],
        *,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next len(codes) matching requests with these codes, then serve normally.

        A code of 400 or more answers OneSignal's error body for it (429: "API rate limit
        exceeded.") without touching state; a code under 400 lets that request through.
        `retry_after` adds a `Retry-After` header (whole seconds as an integer, fractions as
        written, so tests can stay fast).
        """
        with self._lock:
            self._statuses.append(_Statuses(_match(method, path), deque(codes), retry_after))
            self.active = True

    def drop_connections(
        self, times: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Close the connection of the next `times` matching requests mid-response."""
        with self._lock:
            self._drops.append(_Drops(_match(method, path), times))
            self.active = True

    def hold(self, *, method: str | None = None, path: str | None = None) -> Hold:
        """Make matching requests wait until the returned Hold is released."""
        hold = Hold(_match(method, path))
        with self._lock:
            self._holds.append(hold)
            self.active = True
        return hold

    def answer_late(
        self, seconds: float, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Serve every matching request at once (its effects happen: a notification is
        created), then wait `seconds` before answering, until cleared (delays add up)."""
        with self._lock:
            self._late.append(_Latency(_match(method, path), seconds))
            self.active = True

    def hold_answers(self, *, method: str | None = None, path: str | None = None) -> Hold:
        """Serve matching requests at once, but hold their answers until the Hold is released."""
        hold = Hold(_match(method, path))
        with self._lock:
            self._answer_holds.append(hold)
            self.active = True
        return hold

    def clear(self) -> None:
        """Remove every fault; requests and answers still held are released."""
        with self._lock:
            for hold in [*self._holds, *self._answer_holds]:
                hold.release()
            self._latencies.clear()
            self._statuses.clear()
            self._drops.clear()
            self._holds.clear()
            self._late.clear()
            self._answer_holds.clear()
            self.active = False

    def on_arrival(self, method: str, path: str) -> Decision:
        """Latency and holds that apply to a request that just arrived."""
        with self._lock:
            return _decide(self._latencies, self._holds, method, path)

    def on_answer(self, method: str, path: str) -> Decision:
        """Delay and holds that apply to the answer of a request just served."""
        with self._lock:
            return _decide(self._late, self._answer_holds, method, path)

    def take_drop(self, method: str, path: str) -> bool:
        """Whether this request's connection is to be dropped (consumes one drop)."""
        with self._lock:
            for rule in self._drops:
                if rule.remaining > 0 and rule.match.matches(method, path):
                    rule.remaining -= 1
                    return True
        return False

    def take_status(self, method: str, path: str) -> StatusFault | None:
        """The injected status for this request, if any (consumes it)."""
        with self._lock:
            for rule in self._statuses:
                if rule.codes and rule.match.matches(method, path):
                    return StatusFault(rule.codes.popleft(), rule.retry_after)
        return None


def _decide(latencies: list[_Latency], holds: list[Hold], method: str, path: str) -> Decision:
    """What `latencies` and `holds` say about one request (the caller holds the lock)."""
    decision = Decision()
    for rule in latencies:
        if rule.match.matches(method, path):
            decision.latency += rule.seconds
    for hold in holds:
        if not hold.released.is_set() and hold.matches(method, path):
            hold.arrivals += 1
            decision.holds.append(hold)
    for hold in decision.holds:
        hold.arrived.set()
    return decision


def _match(method: str | None, path: str | None) -> _Match:
    return _Match(method.upper() if method else None, path)
