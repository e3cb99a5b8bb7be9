"""History sync progress, and the object through which the sync client writes into the graph.

Theory of operation: the history sync (imap/sync.py) must not import the graph (DESIGN.md,
packages), so it is handed a `GraphSyncStore`. Per member and upstream mailbox one row of
`sync_state` records the mailbox's UIDVALIDITY and the highest UID whose headers, and whose
full message, are in the graph. A batch of messages is ingested and its progress advanced in
the same writer transaction: after a crash, the recorded UID never runs ahead of the graph,
and a batch fetched twice is folded by ingest's idempotence (Message-ID, else header hash),
so nothing is lost and nothing is counted twice. A new UIDVALIDITY (RFC 9051 §2.3.1.1: the old
UIDs mean nothing any more) resets the row, and the mailbox is read again from the start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relayproxy.graph import Graph, Prepared, prepare_many, prepare_one
from relayproxy.graph.ingest import Ingested, Seen, iso
from relayproxy.graph.mail import now_utc

SOURCE = "sync"
Record = Callable[[sqlite3.Connection, int, int, str], None]  # (conn, count, new, now)
_COLUMNS = (
    "member, mailbox, uidvalidity, headers_uid, bodies_uid, in_window, headers_done,"
    " bodies_done, new_messages, status, error, updated_at"
)


@dataclass(frozen=True, slots=True)
class MailboxProgress:
    """How far the history sync of one member's mailbox has come."""

    member: str
    mailbox: str
    uidvalidity: int
    headers_uid: int
    bodies_uid: int
    in_window: int
    headers_done: int
    bodies_done: int
    new_messages: int
    status: str  # running | done | failed
    error: str | None
    updated_at: str


def load(conn: sqlite3.Connection, member: str, mailbox: str) -> MailboxProgress | None:
    """The recorded progress of `mailbox` of `member`, or None when never synced."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM sync_state WHERE member = ? AND mailbox = ?", (member, mailbox)
    ).fetchone()
    return MailboxProgress(*row) if row else None


def for_member(conn: sqlite3.Connection, member: str | None = None) -> list[MailboxProgress]:
    """Progress of every mailbox of `member` (of every member when None), for pages and metrics."""
    if member is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM sync_state ORDER BY member, mailbox").fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM sync_state WHERE member = ? ORDER BY mailbox", (member,)
        ).fetchall()
    return [MailboxProgress(*row) for row in rows]


def begin(
    conn: sqlite3.Connection, member: str, mailbox: str, uidvalidity: int, in_window: int, now: str
) -> MailboxProgress:
    """Start (or resume) a pass over `mailbox`; a changed UIDVALIDITY forgets the old progress."""
    known = load(conn, member, mailbox)
    if known is None or known.uidvalidity != uidvalidity:
        conn.execute(
            """INSERT INTO sync_state (member, mailbox, uidvalidity, in_window, status, updated_at)
               VALUES (?, ?, ?, ?, 'running', ?)
               ON CONFLICT (member, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity,
                 headers_uid = 0, bodies_uid = 0, in_window = excluded.in_window, headers_done = 0,
                 bodies_done = 0, status = 'running', error = NULL, updated_at = excluded.updated_at""",
            (member, mailbox, uidvalidity, in_window, now),
        )
    else:
        conn.execute(
            "UPDATE sync_state SET in_window = ?, status = 'running', error = NULL, updated_at = ?"
            " WHERE member = ? AND mailbox = ?",
            (in_window, now, member, mailbox),
        )
    found = load(conn, member, mailbox)
    assert found is not None
    return found


def advance(
    conn: sqlite3.Connection, member: str, mailbox: str, *, headers_only: bool, last_uid: int,
    count: int, new: int, now: str,
) -> None:
    """Record that every UID up to `last_uid` is in the graph (headers, or whole messages)."""
    if headers_only:
        sql = ("UPDATE sync_state SET headers_uid = max(headers_uid, ?), headers_done = headers_done + ?,"
               " new_messages = new_messages + ?, updated_at = ? WHERE member = ? AND mailbox = ?")
    else:
        sql = ("UPDATE sync_state SET bodies_uid = max(bodies_uid, ?), bodies_done = bodies_done + ?,"
               " headers_uid = max(headers_uid, ?), new_messages = new_messages + ?, updated_at = ?"
               " WHERE member = ? AND mailbox = ?")
    if headers_only:
        conn.execute(sql, (last_uid, count, new, now, member, mailbox))
    else:
        conn.execute(sql, (last_uid, count, last_uid, new, now, member, mailbox))


def finish(conn: sqlite3.Connection, member: str, mailbox: str, error: str | None, now: str) -> None:
    """Mark a pass over `mailbox` done, or failed with a sentence saying why."""
    conn.execute(
        "UPDATE sync_state SET status = ?, error = ?, updated_at = ? WHERE member = ? AND mailbox = ?",
        ("failed" if error else "done", error, now, member, mailbox),
    )


class GraphSyncStore:
    """What the history sync is injected with: progress reads and writes, and ingest of batches."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._last_write: asyncio.Future[None] | None = None

    async def load(self, member: str, mailbox: str) -> MailboxProgress | None:
        """The recorded progress of `mailbox`, or None when it was never synced."""

        def read() -> MailboxProgress | None:
            with self.graph.store.read() as conn:
                return load(conn, member, mailbox)

        return await asyncio.to_thread(read)

    async def begin(self, member: str, mailbox: str, uidvalidity: int, in_window: int) -> MailboxProgress:
        """Start or resume `mailbox`; returns where to resume (from zero after a UIDVALIDITY change)."""
        now = iso(now_utc())
        return await self.graph.store.write(lambda conn: begin(conn, member, mailbox, uidvalidity, in_window, now))

    async def ingest(
        self, member: str, mailbox: str, messages: Sequence[bytes], *, headers_only: bool, last_uid: int
    ) -> int:
        """Ingest one fetched batch and advance the progress to `last_uid` in one transaction.

        Returns how many messages were new to the graph (a copy already captured by the proxy,
        or by an earlier pass, is not). Several calls may be in flight: they parse in parallel
        but write in the order they were called, and a call whose predecessor failed fails
        too, so recorded progress never passes a batch that is not in the graph.
        """

        def record(conn: sqlite3.Connection, count: int, new: int, now: str) -> None:
            advance(conn, member, mailbox, headers_only=headers_only, last_uid=last_uid,
                    count=count, new=new, now=now)

        return await self.ingest_recorded(member, messages, headers_only=headers_only,
                                          origin=f"sync {mailbox}", record=record)

    async def ingest_recorded(
        self, member: str, messages: Sequence[bytes], *, headers_only: bool, origin: str, record: Record,
        source: str = SOURCE,
    ) -> int:
        """Ingest a batch, calling `record(conn, count, new, now)` in the same transaction to note
        progress; ordered as `ingest` says. Shared by the history sync and the IDLE watcher."""
        previous, mine = self._last_write, asyncio.get_running_loop().create_future()
        self._last_write = mine
        try:
            new = await self._ingest(member, messages, headers_only, origin, source, record, previous)
        except BaseException as exc:
            mine.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            mine.exception()  # retrieved: only successors care
            raise
        mine.set_result(None)
        return new

    async def _ingest(
        self, member: str, messages: Sequence[bytes], headers_only: bool, origin: str, source: str,
        record: Record, previous: asyncio.Future[None] | None,
    ) -> int:
        captured = now_utc()
        seen = Seen(member, source, captured)
        blobs = self.graph.blobs

        def parse() -> list[Prepared]:
            if headers_only:
                return [prepare_one(raw, seen, blobs, headers_only=True, origin=origin) for raw in messages]
            return prepare_many([(raw, seen, origin) for raw in messages], blobs)

        batch = await asyncio.to_thread(parse)
        if previous is not None:
            await asyncio.shield(previous)  # raises when the batch before did not land
        now = iso(captured)

        def write(conn: sqlite3.Connection) -> tuple[list[Ingested | None], int]:
            results = self.graph.write_prepared(conn, batch)
            new = sum(1 for r in results if r is not None and r.new)
            record(conn, len(batch), new, now)
            return results, new

        results, new = await self.graph.store.write(write)
        self.graph.announce(results)
        return new

    async def finish(self, member: str, mailbox: str, error: str | None = None) -> None:
        now = iso(now_utc())
        await self.graph.store.write(lambda conn: finish(conn, member, mailbox, error, now))

    def progress(self, member: str | None = None) -> list[MailboxProgress]:
        """Recorded progress (blocking read: call from a thread in async code)."""
        with self.graph.store.read() as conn:
            return for_member(conn, member)
