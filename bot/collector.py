"""Python's garbage collector, set for a long-running server (`pushops serve` and `worker`).

Two settings, applied once a process has started its services:

- What start-up made (libraries, models, pools, caches) lives as long as the process; it is
  frozen out of the collector's reach (`gc.freeze`), as Instagram's Django servers do. A full
  collection walked all of it: with everything loaded that took over 100 ms, twice in ten
  seconds under a burst of sends, and every request in flight waited for it.
- A young collection runs every 50,000 net allocations instead of 700. A send or a Slack
  request makes a few thousand short-lived objects, nearly all freed by reference counting
  before a collection would see them; at the default threshold the collector ran about 140
  times a second under a 1,000 sends/s burst and took 15% of the event loop. Cycles still
  get collected, a little later; memory grows by at most the young generation's size.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 50_000
# Older generations keep CPython's ratios: one middle collection per 20 young ones, one
# full per 100 middle ones (CPython also waits until a quarter of the heap is new).
THRESHOLDS: Final = (YOUNG_THRESHOLD, 20, 100)


def settle() -> None:
    """Freeze what exists now and raise the collection thresholds (once per process)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*THRESHOLDS)
