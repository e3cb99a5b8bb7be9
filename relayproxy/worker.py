"""The ingest worker: moves journalled mail into the graph, in batches, off the proxies' path.

It sleeps until woken (a capture was journalled) or a second passes, takes accepted journal
entries oldest first, parses them in a thread, and ingests each batch in one writer job that
also deletes the entries: a message leaves the journal exactly when it enters the graph.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from relayproxy import metrics
from relayproxy.graph import Graph, Prepared, Seen, prepare_one
from relayproxy.graph.queries import parse_iso

log = logging.getLogger("relayproxy.worker")
_BATCH = 64


class IngestWorker:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._stopping = False
        self.ingested = 0

    def wake(self) -> None:
        """Called after a capture was journalled."""
        self._wake.set()

    def _prepare(self, limit: int) -> list[Prepared]:
        batch = []
        for entry in self.graph.journal_take(limit):
            seen = Seen(entry.member, entry.source, parse_iso(entry.created_at), entry.recipients)
            item = prepare_one(
                entry.raw, seen, self.graph.blobs,
                headers_only=entry.source == "imap-headers", origin=f"journal entry {entry.id}",
            )
            item.journal_id = entry.id
            batch.append(item)
        return batch

    async def step(self) -> int:
        """Ingest one batch; returns how many entries it took."""
        batch = await asyncio.to_thread(self._prepare, _BATCH)
        if not batch:
            return 0
        results = await self.graph.store.write(lambda conn: self.graph.write_prepared(conn, batch))
        self.graph.announce(results)
        self.ingested += len(batch)
        metrics.inc("ingested_total", len(batch))
        return len(batch)

    async def run(self) -> None:
        """Ingest until stopped; a failing batch is logged and retried after a pause."""
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
            self._idle.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            self._idle.clear()

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
