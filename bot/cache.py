"""An expiring in-process map whose missing entries are loaded once, however many ask at once.

Hand-written rather than cachetools' `TTLCache`: each answer here carries its own lifetime
(Slack's "no such user" is kept briefly, a network error not at all), concurrent misses must
share one load, and a load that a caller stopped waiting for must still finish and be kept,
which no well-kept library offers together. One event loop uses it: no thread locking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Load = Callable[[], Awaitable[tuple[V, float | None]]]
"""Returns the value and the seconds to keep it (None: give it to the callers, keep nothing)."""

DEFAULT_LIMIT: Final = 10_000
"""Entries kept at most; the oldest go first beyond it."""


class Expiring(Generic[K, V]):
    """Values by key, each until its own expiry (see the module's docstring)."""

    def __init__(
        self, *, limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._clock = clock
        self._items: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: K) -> tuple[bool, V | None]:
        """(found, value) from the map alone: found is False when missing or expired."""
        item = self._items.get(key)
        if item is None:
            return False, None
        if item[0] <= self._clock():
            del self._items[key]
            return False, None
        return True, item[1]

    async def get(self, key: K, load: Load[V]) -> V:
        """The value kept for `key`, else what `load` gives (one load per key at a time).

        The load runs as its own task: a caller that stops waiting (a time budget) cancels
        only its wait, and the answer is still kept for the next caller.
        """
        found, value = self.peek(key)
        if found:
            return value  # type: ignore[return-value]  # found means a V was kept
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(key, load))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)

    def put(self, key: K, value: V, ttl: float) -> None:
        """Keep `value` for `key` for `ttl` seconds (a value read where a load cannot run)."""
        self._loading.pop(key, None)
        self._put(key, value, ttl)

    def forget(self, key: K) -> None:
        """Drop `key`; a load of it already running is not kept (it may predate a change)."""
        self._items.pop(key, None)
        self._loading.pop(key, None)

    def forget_where(self, matches: Callable[[K], bool]) -> None:
        """Drop every key `matches` accepts (a workspace's entries), loads running included."""
        for key in [key for key in (*self._items, *self._loading) if matches(key)]:
            self.forget(key)

    def clear(self) -> None:
        """Drop everything, including what loads running now would keep."""
        self._items.clear()
        self._loading.clear()

    async def _load(self, key: K, load: Load[V]) -> V:
        task = asyncio.current_task()
        try:
            value, ttl = await load()
        finally:
            # Not ours any more when forgotten meanwhile: what it read may predate a change.
            still_ours = self._loading.get(key) is task
            if still_ours:
                del self._loading[key]
        if ttl is not None and still_ours:
            self._put(key, value, ttl)
        return value

    def _put(self, key: K, value: V, ttl: float) -> None:
        self._items.pop(key, None)
        while len(self._items) >= self._limit:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (self._clock() + ttl, value)


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a load's error as seen: every caller may have stopped waiting for it."""
    if not task.cancelled():
        task.exception()
