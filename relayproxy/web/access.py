"""What every endpoint needs first: who is asking, and a read connection off the event loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from relayproxy.graph import visibility
from relayproxy.graph.visibility import Viewer
from relayproxy.web.auth import NotSignedIn, signed_in

T = TypeVar("T")


async def read(request: Request, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn(conn)` on a fresh read connection in a worker thread."""
    store = request.app.state.graph.store

    def run() -> T:
        with store.read() as conn:
            return fn(conn)

    return await run_in_threadpool(run)


async def viewer(request: Request) -> Viewer:
    """The signed-in member as the graph knows them; raises NotSignedIn."""
    login = await signed_in(request)
    found = await read(request, lambda conn: visibility.viewer(conn, login))
    if found is None:
        raise NotSignedIn()
    request.state.viewer = found
    return found


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within bounds; ValueError names it otherwise."""
    text = request.query_params.get(name, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}.")
    return value
