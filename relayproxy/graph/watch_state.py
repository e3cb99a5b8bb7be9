"""Where each continuous-sync watcher stands, and the store the IDLE watcher is injected with.

Theory of operation: the watcher (imap/watch.py) must not import the graph, so it is handed a
`GraphWatchStore`. Per member and mailbox one row of `watch_state` records the UIDVALIDITY
and the highest UID read. New messages are ingested through the history sync's ingest path
(`GraphSyncStore.ingest_recorded`: same parsing, same idempotent writes) and the row advanced
in the same transaction, so after a crash or a dropped connection the watcher fetches exactly
what it has not stored; a message fetched twice is folded by ingest. A new UIDVALIDITY (RFC
9051 §2.3.1.1) starts the row again from the mailbox's current end.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from relayproxy.graph import Graph
from relayproxy.graph.ingest import iso
from relayproxy.graph.mail import now_utc
from relayproxy.graph.sync_state import GraphSyncStore

SOURCE = "watch"


def position(conn: sqlite3.Connection, member: str, mailbox: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID read) of `member`'s `mailbox`, or None when never watched."""
    row = conn.execute(
        "SELECT uidvalidity, last_uid FROM watch_state WHERE member = ? AND mailbox = ?", (member, mailbox)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def start_at(conn: sqlite3.Connection, member: str, mailbox: str, uidvalidity: int, last_uid: int, now: str) -> None:
    """Start watching from `last_uid` (what is at or below it is the history sync's job)."""
    conn.execute(
        """INSERT INTO watch_state (member, mailbox, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (member, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity,
             last_uid = excluded.last_uid, updated_at = excluded.updated_at""",
        (member, mailbox, uidvalidity, last_uid, now),
    )


def advance(conn: sqlite3.Connection, member: str, mailbox: str, last_uid: int, count: int, now: str) -> None:
    """Record that every UID up to `last_uid` was read."""
    conn.execute(
        "UPDATE watch_state SET last_uid = max(last_uid, ?), captured = captured + ?, updated_at = ?"
        " WHERE member = ? AND mailbox = ?",
        (last_uid, count, now, member, mailbox),
    )


class GraphWatchStore:
    """What the IDLE watcher is injected with: positions, and ingest of new messages."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._ingest = GraphSyncStore(graph)

    async def position(self, member: str, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID read), or None when `mailbox` was never watched."""

        def read() -> tuple[int, int] | None:
            with self.graph.store.read() as conn:
                return position(conn, member, mailbox)

        return await asyncio.to_thread(read)

    async def start_at(self, member: str, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        now = iso(now_utc())
        await self.graph.store.write(lambda conn: start_at(conn, member, mailbox, uidvalidity, last_uid, now))

    async def ingest(self, member: str, mailbox: str, messages: Sequence[bytes], last_uid: int) -> int:
        """Ingest new whole messages and advance the position to `last_uid` atomically; returns how many were new."""

        def record(conn: sqlite3.Connection, count: int, new: int, now: str) -> None:
            advance(conn, member, mailbox, last_uid, count, now)

        return await self._ingest.ingest_recorded(member, messages, headers_only=False, origin=f"watch {mailbox}",
                                                  record=record, source=SOURCE)
