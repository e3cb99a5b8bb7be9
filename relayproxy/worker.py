"""The ingest worker: moves journalled mail into the graph, in batches, off the proxies' path.

It sleeps until woken (a capture was journalled) or a second passes, takes the ids of accepted
journal entries oldest first, and has them read and parsed in worker processes (`serve` uses
`default_processes()`, one fewer than the cores): parsing is CPU work in Python, and in this
process it would compete with the relays for the interpreter. The parse results come back and
are ingested in one writer job that also deletes the entries, so a message leaves the journal
exactly when it enters the graph. With `processes=0` parsing runs in a thread instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import time
from typing import Any

from relayproxy import metrics
from relayproxy.graph import Graph, Prepared, prepare_journal, team_of

log = logging.getLogger("relayproxy.worker")
_BATCH = 64


def default_processes() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


class IngestWorker:
    """Ingests the journal; `quiet` and `max_delay` make it yield to relaying (see `run`)."""

    def __init__(self, graph: Graph, processes: int = 0, *, quiet: float = 0.2, max_delay: float = 5.0) -> None:
        self.graph = graph
        self.processes = processes
        self.quiet = quiet
        self.max_delay = max_delay
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.ingested = 0

    def wake(self) -> None:
        """Called after a capture was journalled."""
        self._wake.set()

    async def _prepare(self, entries: list[Any]) -> list[Prepared]:
        settings = self.graph.settings.storage
        args = (settings.database, settings.blobs, entries, team_of(self.graph.settings))
        if self.processes > 0:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = concurrent.futures.ProcessPoolExecutor(self.processes, mp_context=context)
            try:
                return await asyncio.get_running_loop().run_in_executor(self._pool, prepare_journal, *args)
            except concurrent.futures.process.BrokenProcessPool:
                log.error("the ingest worker process died; parsing in this process from now on")
                self.processes, self._pool = 0, None
        return await asyncio.to_thread(prepare_journal, *args)

    async def step(self) -> int:
        """Ingest one batch; returns how many entries it took."""
        async with self._lock:
            entries = await asyncio.to_thread(self.graph.journal_refs, _BATCH)
            if not entries:
                return 0
            batch = await self._prepare(entries)
            results = await self.graph.store.write(lambda conn: self.graph.write_prepared(conn, batch))
        self.graph.announce(results)
        self.ingested += len(batch)
        metrics.inc("ingested_total", len(batch))
        return len(entries)

    async def run(self) -> None:
        """Ingest until stopped; a failing batch is logged and retried after a pause.

        Relaying comes first: after a wake-up the worker waits until captures have paused for
        `quiet` seconds (at most `max_delay`), so a burst of mail is relayed at full speed and
        ingested right after it, instead of the two competing for the same cores.
        """
        while not self._stopping:
            self._wake.clear()
            try:
                taken = await self.step()
            except Exception as exc:
                log.error("ingest failed: %s: %s; retrying", type(exc).__name__, exc)
                taken = 0
                await asyncio.sleep(1)
            if taken:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            await self._wait_for_a_pause()

    async def _wait_for_a_pause(self) -> None:
        deadline = time.monotonic() + self.max_delay
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(self.quiet, left))
            except TimeoutError:
                return

    async def drain(self, timeout: float = 30.0) -> bool:
        """Ingest everything journalled so far; True when the journal is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await self.step():
                return True
        return False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def close(self) -> None:
        """Release the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
