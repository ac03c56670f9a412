"""A per-key rate limit that counts what it holds back: at most one pass per key per window.

The audit of refusals uses it (`commands.denials`): a loop of refused requests writes one
event per person and action per window, and the next event carries how many were held back.
Hand-written rather than a token bucket from a library: the count held back is the point, and
none of the well-kept limiters (limits, aiolimiter) reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_LIMIT: Final = 10_000
"""Keys remembered at most; the least recently passed go first beyond it."""


class Throttle(Generic[K]):
    """One pass per key per `window` seconds; what comes between is counted, not passed.

    In one process and one event loop: no locking. Several replicas each keep their own.
    """

    def __init__(
        self,
        window: float,
        *,
        limit: int = DEFAULT_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._limit = limit
        self._clock = clock
        self._keys: dict[K, tuple[float, int]] = {}  # key -> (window ends, held back in it)

    def __len__(self) -> int:
        return len(self._keys)

    def admit(self, key: K) -> int | None:
        """None when `key` already passed within the window (this one is counted); else the
        number held back since its last pass (0 for a first pass), and a new window starts."""
        now = self._clock()
        found = self._keys.get(key)
        if found is not None and now < found[0]:
            self._keys[key] = (found[0], found[1] + 1)
            return None
        held = found[1] if found is not None else 0
        self._keys.pop(key, None)
        while len(self._keys) >= self._limit:
            self._keys.pop(next(iter(self._keys)))
        self._keys[key] = (now + self.window, 0)
        return held
