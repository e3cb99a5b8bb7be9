"""The seam between the proxies and the graph.

Protocol code (smtp/, imap/) never imports the graph. It is handed an object with the
`Capture` interface and calls it at the moments DESIGN.md's data flow names:

SMTP, per message:
    ticket = await capture.pending(raw, member, "smtp", recipients)   # before the final dot goes up
    await capture.accepted(ticket, accepted_recipients)                # on upstream 2xx, before the client hears it
    await capture.refused(ticket)                                      # on upstream refusal or a lost session

IMAP, per message seen in a FETCH response or an APPEND:
    capture.received(raw, member, "imap-fetch" | "imap-append" | "imap-headers")   # never awaited; never blocks
    capture.received_file(file, size, member, source)   # the same for a literal spilled to a file

Every method swallows its own failures (logs and counts them): the mail must flow whatever
happens to capture. `pending` returns None when it could not journal; `accepted`/`refused`
accept that None and do nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

from relayproxy import metrics

if TYPE_CHECKING:
    from relayproxy.graph import Graph

log = logging.getLogger("relayproxy.capture")

SOURCES = ("smtp", "imap-fetch", "imap-append", "imap-headers", "import", "sync")


class Capture(Protocol):
    async def pending(
        self, raw: bytes, member: str, source: str, recipients: Sequence[str]
    ) -> int | None:
        """Journal a message about to be sent upstream; durable when this returns."""
        ...

    async def accepted(self, ticket: int | None, recipients: Sequence[str]) -> None:
        """Upstream accepted the message for `recipients`; durable when this returns."""
        ...

    async def refused(self, ticket: int | None) -> None:
        """Upstream refused the message (or the session was lost before its reply)."""
        ...

    def received(self, raw: bytes, member: str, source: str) -> None:
        """Hand over a message seen over IMAP; returns at once, journalling happens on the side."""
        ...

    def received_file(self, file: IO[bytes], size: int, member: str, source: str) -> None:
        """Like `received`, for a message spilled to a file: capture owns `file` and closes it."""
        ...


@dataclass
class CapturedMessage:
    raw: bytes
    member: str
    source: str
    recipients: tuple[str, ...] = ()
    state: str = "pending"


@dataclass
class MemoryCapture:
    """A Capture that keeps everything in a list: for protocol tests that need no graph."""

    messages: list[CapturedMessage] = field(default_factory=list)
    fail: bool = False

    async def pending(
        self, raw: bytes, member: str, source: str, recipients: Sequence[str]
    ) -> int | None:
        if self.fail:
            return None
        self.messages.append(CapturedMessage(raw, member, source, tuple(recipients)))
        return len(self.messages) - 1

    async def accepted(self, ticket: int | None, recipients: Sequence[str]) -> None:
        if ticket is not None:
            self.messages[ticket].state = "accepted"
            self.messages[ticket].recipients = tuple(recipients)

    async def refused(self, ticket: int | None) -> None:
        if ticket is not None:
            self.messages[ticket].state = "refused"

    def received(self, raw: bytes, member: str, source: str) -> None:
        if not self.fail:
            self.messages.append(CapturedMessage(raw, member, source, (), "accepted"))

    def received_file(self, file: IO[bytes], size: int, member: str, source: str) -> None:
        with file:
            file.seek(0)
            self.received(file.read(), member, source)

    def accepted_messages(self) -> list[CapturedMessage]:
        return [m for m in self.messages if m.state == "accepted"]


class JournalCapture:
    """The real Capture: journals into the graph database, then wakes the ingest worker.

    IMAP hand-overs return at once: they are queued and one background task journals whatever
    has queued up in one writer job, so a mailbox sync costs the relay a list append per
    message, not a task and a thread hand-off each. At most `max_inflight_bytes` wait at once;
    beyond that a capture is dropped and counted rather than letting memory grow without bound.
    A message spilled to a file is copied into the journal in chunks, never held whole here.
    """

    def __init__(self, graph: Graph, wake: Callable[[], None] = lambda: None,
                 max_inflight_bytes: int = 256 * 1024 * 1024) -> None:
        self.graph = graph
        self.wake = wake
        self.max_inflight_bytes = max_inflight_bytes
        self._inflight_bytes = 0
        self._queue: list[tuple[bytes, str, str]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _failed(protocol: str, what: str, exc: BaseException, count: int = 1) -> None:
        metrics.inc("capture_failures_total", count, protocol=protocol)
        log.warning("capture failed: %s (%s: %s); the mail still flows", what, type(exc).__name__, exc)

    async def pending(self, raw: bytes, member: str, source: str, recipients: Sequence[str]) -> int | None:
        try:
            return await self.graph.journal_add(raw, member, source, recipients, state="pending")
        except Exception as exc:
            self._failed("smtp", "journal pending", exc)
            return None

    async def accepted(self, ticket: int | None, recipients: Sequence[str]) -> None:
        if ticket is None:
            return
        try:
            await self.graph.journal_accept(ticket, recipients)
            metrics.inc("messages_captured_total", protocol="smtp")
        except Exception as exc:
            self._failed("smtp", "journal accept", exc)
            return
        self.wake()

    async def refused(self, ticket: int | None) -> None:
        if ticket is None:
            return
        try:
            await self.graph.journal_drop(ticket)
        except Exception as exc:
            self._failed("smtp", "journal drop", exc)

    def received(self, raw: bytes, member: str, source: str) -> None:
        if self._inflight_bytes + len(raw) > self.max_inflight_bytes:
            self._failed("imap", "capture backlog full", MemoryError("backlog over limit"))
            return
        self._inflight_bytes += len(raw)
        self._queue.append((raw, member, source))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self.graph.journal_add_many(batch)
                    metrics.inc("messages_captured_total", len(batch), protocol="imap")
                    self.wake()
                except Exception as exc:
                    self._failed("imap", "journal", exc, len(batch))
                finally:
                    self._inflight_bytes -= sum(len(raw) for raw, _, _ in batch)
        finally:
            self._flushing = None

    def received_file(self, file: IO[bytes], size: int, member: str, source: str) -> None:
        task = asyncio.get_running_loop().create_task(self._journal_file(file, size, member, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _journal_file(self, file: IO[bytes], size: int, member: str, source: str) -> None:
        try:
            with file:
                await self.graph.journal_add_file(file, size, member, source)
            metrics.inc("messages_captured_total", protocol="imap")
            self.wake()
        except Exception as exc:
            self._failed("imap", "journal", exc)

    async def flush(self) -> None:
        """Wait until every IMAP hand-over so far is journalled."""
        while self._flushing is not None or self._tasks:
            waiting = [t for t in (self._flushing, *self._tasks) if t is not None]
            await asyncio.gather(*waiting, return_exceptions=True)
