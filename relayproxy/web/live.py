"""Live updates: server-sent events telling open pages that new mail was ingested.

The graph calls `Broker.publish` from its worker after each ingested batch, on whatever thread
that is; the broker hands the message ids to every open `/events` stream on the event loop.
Each stream forwards only the messages its member may see (visibility decides), and the page's
script (static/live.js) then re-fetches the page and swaps its content in.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from relayproxy.graph import views, visibility
from relayproxy.web.access import read, viewer

KEEPALIVE = 15.0


class Broker:
    """Fan-out of ingested message ids to the open event streams."""

    def __init__(self, index: views.Views) -> None:
        self._index = index
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[list[int]]] = set()


    def publish(self, message_ids: list[int]) -> None:
        """Called after each ingested batch (any thread)."""
        self._index.ingested(message_ids)
        loop = self._loop
        if loop is None or loop.is_closed() or not message_ids:
            return
        loop.call_soon_threadsafe(self._fan_out, list(message_ids))

    def _fan_out(self, message_ids: list[int]) -> None:
        for queue in list(self._queues):
            queue.put_nowait(message_ids)

    def open(self) -> asyncio.Queue[list[int]]:
        """A queue for one stream (on the event loop: that is the loop `publish` hands ids to)."""
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        self._queues.add(queue)
        return queue

    def close(self, queue: asyncio.Queue[list[int]]) -> None:
        self._queues.discard(queue)


def _levels(conn: sqlite3.Connection, *, viewer_id: int, message_ids: list[int]) -> dict[int, str | None]:
    return visibility.levels(conn, viewer_id, message_ids)


async def events(request: Request) -> StreamingResponse:
    """`GET /events`: `event: ingested` with the visible message ids, as mail arrives."""
    who = await viewer(request)
    broker: Broker = request.app.state.broker
    queue = broker.open()

    async def stream() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    ids = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                seen = await read(request, functools.partial(_levels, viewer_id=who.id, message_ids=ids))
                visible = [m for m, level in seen.items() if level is not None]
                if visible:
                    yield f"event: ingested\ndata: {json.dumps({'messages': visible})}\n\n"
        finally:
            broker.close(queue)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
