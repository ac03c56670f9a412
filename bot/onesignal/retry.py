"""When to try a OneSignal request again, and how long to wait first.

A dozen lines of our own rather than tenacity or stamina: the decision turns on our error
classes and on `Retry-After`, and the waiting must stay inside the client's own loop (the
same request, same idempotency key, re-sent); a library would need custom predicates and
wait functions for all of that and add a dependency for no less code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, honouring the server's `Retry-After`.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        base_delay: the first backoff ceiling in seconds; it doubles per retry.
        max_delay: no wait is longer than this. A `Retry-After` above it is not waited
            for: the error goes to the caller, who can reschedule rather than hold a task.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_retries, base_delay and max_delay must not be negative")

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None to give up."""
        if retry >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_delay else None
        ceiling = min(self.max_delay, self.base_delay * 2**retry)
        return self.rng.uniform(0, ceiling)
