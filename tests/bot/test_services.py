"""Background work after the ack: held until done, waited for at shutdown, then cancelled;
heavy work waits for a place and lets requests awaiting their ack go first."""

import asyncio

import httpx
import pytest

from bot.services import BackgroundTasks, Services
from bot.settings import Settings


async def test_drain_waits_for_quick_work_and_cancels_what_outlives_the_grace():
    tasks = BackgroundTasks()
    quick = tasks.spawn(asyncio.sleep(0.01, result="done"))
    stuck = tasks.spawn(asyncio.Event().wait())

    await tasks.drain(0.2)

    assert quick.result() == "done"
    assert stuck.cancelled()
    assert len(tasks) == 0


async def test_a_finished_task_is_no_longer_held():
    tasks = BackgroundTasks()

    await tasks.spawn(asyncio.sleep(0))

    assert len(tasks) == 0


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


async def _yield_a_few_times():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_heavy_work_lets_a_request_awaiting_its_ack_go_first(http):
    services = Services(settings=Settings(_env_file=None), onesignal_http=http)
    started = asyncio.Event()

    async def heavy():
        async with services.heavy_work():
            started.set()

    with services.acking():
        work = asyncio.create_task(heavy())
        await _yield_a_few_times()
        assert not started.is_set()  # the ack comes first
    await work
    assert started.is_set()


async def test_heavy_work_waits_for_a_place_and_light_work_does_not(http):
    services = Services(settings=Settings(_env_file=None), onesignal_http=http, heavy_work_limit=1)
    release = asyncio.Event()
    second_started = asyncio.Event()

    async def first():
        async with services.heavy_work():
            await release.wait()

    async def second():
        async with services.heavy_work():
            second_started.set()

    holder, waiter = asyncio.create_task(first()), asyncio.create_task(second())
    await _yield_a_few_times()
    assert not second_started.is_set()
    await services.acks_first()  # light work: no place needed, nothing to wait for
    release.set()
    await asyncio.gather(holder, waiter)
    assert second_started.is_set()
