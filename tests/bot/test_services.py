"""Background work after the ack: held until done, waited for at shutdown, then cancelled."""

import asyncio

from bot.services import BackgroundTasks


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
