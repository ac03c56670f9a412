"""`bot.cache.Expiring`: values kept until their own expiry, one load per key at a time."""

from __future__ import annotations

import asyncio

from bot.cache import Expiring


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_put_is_kept_for_its_ttl_only():
    clock = Clock()
    cache: Expiring[str, int] = Expiring(clock=clock)
    cache.put("a", 1, 5.0)
    assert cache.peek("a") == (True, 1)
    clock.now += 5.0
    assert cache.peek("a") == (False, None)


async def test_forget_where_drops_the_matching_keys_and_their_running_loads():
    cache: Expiring[tuple[str, str], str] = Expiring()
    cache.put(("T1", "x"), "kept", 60)
    cache.put(("T2", "y"), "other", 60)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow() -> tuple[str, float | None]:
        started.set()
        await release.wait()
        return "stale", 60

    loading = asyncio.create_task(cache.get(("T1", "z"), slow))
    await started.wait()
    cache.forget_where(lambda key: key[0] == "T1")
    release.set()
    assert await loading == "stale"  # the caller still gets its answer...
    assert cache.peek(("T1", "z")) == (False, None)  # ...but it predates the change: not kept
    assert cache.peek(("T1", "x")) == (False, None)
    assert cache.peek(("T2", "y")) == (True, "other")


async def test_concurrent_misses_share_one_load():
    cache: Expiring[str, int] = Expiring()
    loads = 0

    async def load() -> tuple[int, float | None]:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return 7, 60

    assert await asyncio.gather(*(cache.get("k", load) for _ in range(5))) == [7] * 5
    assert loads == 1
