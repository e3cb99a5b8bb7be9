"""cancel_and_wait ends a task even when Python 3.11's wait_for swallowed the cancellation."""

from __future__ import annotations

import asyncio

from relayproxy.tasks import cancel_and_wait


async def test_a_task_whose_wait_for_swallowed_the_cancel_is_still_stopped() -> None:
    answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def command_then_idle() -> None:
        await asyncio.wait_for(answer, 10)  # a command, as aioimaplib sends each one
        await asyncio.sleep(3600)  # IDLE

    task = asyncio.create_task(command_then_idle())
    await asyncio.sleep(0)  # the task waits for its answer
    answer.set_result(1)  # the server answers ...
    await cancel_and_wait([task])  # ... in the same loop turn as the stop
    assert task.cancelled()


async def test_tasks_that_already_ended_are_fine() -> None:
    async def fails() -> None:
        raise ValueError("logged where it happened")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait([failed])
    assert failed.done() and isinstance(failed.exception(), ValueError)
