"""Stopping background tasks for certain.

Python 3.11's `asyncio.wait_for` drops a cancellation that arrives in the same loop turn as the
result it was waiting for (CPython gh-86296; fixed in 3.12 by rewriting it on
`asyncio.timeout`). aioimaplib wraps every command in `wait_for`, so a history-sync or IDLE
task cancelled just as the server answered carries on as if nothing happened — into a 25-minute
IDLE, and whoever awaited it hangs. `cancel_and_wait` asks again until each task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, again_after: float = 0.1) -> None:
    """Cancel `tasks` and return once every one has ended, cancelling again any that carried on."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=again_after)
        for task in done:  # their failures were logged where they happened
            if not task.cancelled():
                task.exception()
