"""The import command's pipeline: mail files → parse (worker processes) → one writer.

Parsing, main-text extraction and attachment storage are CPU work in Python, so they run in
worker processes (one per core) while this process finds the messages in the files and its
writer thread ingests. Workers read each message straight from its file (a `MessageRef`),
so only parse results cross between processes. A bounded number of batches is in flight at
once, so memory stays flat whatever the size of the input, and results are ingested in input
order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from relayproxy import parsing_pool
from relayproxy.graph import Graph, Prepared, Seen, prepare_many, team_of
from relayproxy.graph.blobs import BlobStore
from relayproxy.graph.identity import Team
from relayproxy.graph.ingest import Ingested
from relayproxy.graph.mail import now_utc
from relayproxy.mailfiles import MessageRef, scan_path, total_size

_BATCH = 256
_BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class Summary:
    read: int = 0
    new: int = 0
    duplicates: int = 0
    unparsable: int = 0
    bytes: int = 0

    def line(self) -> str:
        return (
            f"{self.read} messages read, {self.new} new, {self.duplicates} duplicates, "
            f"{self.unparsable} unparsable"
        )


def _batches(messages: Iterable[MessageRef]) -> Iterator[list[MessageRef]]:
    batch: list[MessageRef] = []
    size = 0
    for message in messages:
        batch.append(message)
        size += message.length
        if len(batch) >= _BATCH or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _all(paths: list[Path]) -> Iterator[MessageRef]:
    for path in paths:
        yield from scan_path(path)


def import_paths(
    graph: Graph, member: str, paths: list[Path], progress: Callable[[Summary], None] | None = None,
    now: datetime | None = None,
    parsers: parsing_pool.ParsingPool | None = None,
) -> Summary:
    """Import every message under `paths` as `member`'s mail; returns the counts."""
    summary = Summary()
    started = now or now_utc()
    pending: concurrent.futures.Future[list[Ingested | None]] | None = None
    parsing: collections.deque[concurrent.futures.Future[list[Prepared]]] = collections.deque()
    pool, workers = parsers or parsing_pool.start()
    team = team_of(graph.settings)

    def settle(future: concurrent.futures.Future[list[Ingested | None]]) -> None:
        for result in future.result():
            if result is None:
                summary.unparsable += 1
            elif result.new:
                summary.new += 1
            else:
                summary.duplicates += 1
        if progress is not None:
            progress(summary)

    def write(prepared: list[Prepared]) -> None:
        nonlocal pending
        if pending is not None:
            settle(pending)
        pending = graph.store.submit(lambda conn: graph.write_prepared(conn, prepared))

    try:
        for batch in _batches(_all(paths)):
            parsing.append(pool.submit(_prepare, batch, member, started, graph.blobs.root, team))
            summary.read += len(batch)
            summary.bytes += sum(m.length for m in batch)
            if len(parsing) > workers:
                write(parsing.popleft().result())
        while parsing:
            write(parsing.popleft().result())
        if pending is not None:
            settle(pending)
    finally:
        for future in parsing:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return summary


def warm() -> None:
    """Load what parsing needs (the public-suffix list, the reply patterns) ahead of the first batch."""
    from relayproxy.graph.companies import registrable_domain
    from relayproxy.graph.text import main_text

    registrable_domain("example.com")
    main_text("warm\n\nOn Mon, 1 Jan 2026, A <a@example.com> wrote:\n> x\n")


def _prepare(
    refs: list[MessageRef], member: str, started: datetime, blobs_root: Path, team: Team | None = None
) -> list[Prepared]:
    """In a worker process: read and parse a batch; raw bytes travel back only for unparsable mail."""
    items: list[tuple[bytes, Seen, str | None]] = []
    files: dict[str, BinaryIO] = {}
    try:
        for ref in refs:
            file = files.get(ref.path)
            if file is None:
                file = files[ref.path] = open(ref.path, "rb")  # noqa: SIM115 - closed below
            items.append((ref.read_from(file), Seen(member, "import", ref.received or started), ref.origin))
    finally:
        for file in files.values():
            file.close()
    prepared = prepare_many(items, BlobStore(blobs_root), team)
    for item in prepared:
        if item.mail is not None:
            item.raw = b""
    return prepared


class ProgressBar:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, paths: list[Path], stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.total = total_size(paths) if self.enabled else 0
        self.started = time.monotonic()

    def __call__(self, summary: Summary) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        share = summary.bytes / self.total if self.total else 0.0
        width = 30
        bar = "#" * int(share * width)
        self.stream.write(
            f"\r[{bar:<{width}}] {share:6.1%}  {summary.read} messages, {summary.read / elapsed:,.0f}/s"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
