"""Heavy work after the ack waits for a place and lets requests awaiting their ack go first."""

import asyncio

from bot.admission import Admission


async def _yield_a_few_times():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_heavy_work_lets_a_request_awaiting_its_ack_go_first():
    admission = Admission()
    started = asyncio.Event()

    async def heavy():
        async with admission.heavy_work():
            started.set()

    with admission.acking():
        work = asyncio.create_task(heavy())
        await _yield_a_few_times()
        assert not started.is_set()  # the ack comes first
    await work
    assert started.is_set()


async def test_heavy_work_waits_for_a_place_and_light_work_does_not():
    admission = Admission(limit=1)
    release = asyncio.Event()
    second_started = asyncio.Event()

    async def first():
        async with admission.heavy_work():
            await release.wait()

    async def second():
        async with admission.heavy_work():
            second_started.set()

    holder, waiter = asyncio.create_task(first()), asyncio.create_task(second())
    await _yield_a_few_times()
    assert not second_started.is_set()
    await admission.acks_first()  # light work: no place needed, nothing to wait for
    release.set()
    await asyncio.gather(holder, waiter)
    assert second_started.is_set()
