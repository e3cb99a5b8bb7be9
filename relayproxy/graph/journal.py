"""The durable journal of captured mail, and its consumption by ingest.

States: ``pending`` (journalled before the final dot went upstream), ``accepted`` (upstream
said 2xx, or read over IMAP). A refusal deletes the entry. Ingest of an entry and the entry's
deletion happen in the same transaction, so after any crash an entry is either still in the
journal or in the graph — never both, never neither. Entries still ``pending`` at start-up
are treated as accepted: the upstream most likely took them (DESIGN.md, data flow).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from relayproxy.graph.ingest import iso


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    member: str
    source: str
    recipients: tuple[str, ...] | None
    raw: bytes
    created_at: str


def add(
    conn: sqlite3.Connection, raw: bytes, member: str, source: str, recipients: Sequence[str] | None,
    *, state: str, now: datetime,
) -> int:
    """Journal one message; returns its entry id."""
    cursor = conn.execute(
        "INSERT INTO journal (member, source, recipients, state, raw, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (member, source, json.dumps(None if recipients is None else list(recipients)), state, raw, iso(now)),
    )
    return int(cursor.lastrowid or 0)


def accept(conn: sqlite3.Connection, entry_id: int, recipients: Sequence[str]) -> None:
    conn.execute(
        "UPDATE journal SET state = 'accepted', recipients = ? WHERE id = ?",
        (json.dumps(list(recipients)), entry_id),
    )


def drop(conn: sqlite3.Connection, entry_id: int) -> None:
    conn.execute("DELETE FROM journal WHERE id = ?", (entry_id,))


def recover(conn: sqlite3.Connection) -> int:
    """At start-up: pending entries of a crashed run become accepted. Returns how many."""
    return conn.execute("UPDATE journal SET state = 'accepted' WHERE state = 'pending'").rowcount


def take(conn: sqlite3.Connection, limit: int, after: int = 0) -> list[Entry]:
    """Up to `limit` accepted entries with id > `after`, oldest first."""
    rows = conn.execute(
        "SELECT id, member, source, recipients, raw, created_at FROM journal"
        " WHERE state = 'accepted' AND id > ? ORDER BY id LIMIT ?",
        (after, limit),
    ).fetchall()
    entries = []
    for entry_id, member, source, recipients, raw, created_at in rows:
        parsed = json.loads(recipients) if recipients else None
        entries.append(Entry(entry_id, member, source, tuple(parsed) if parsed is not None else None, raw, created_at))
    return entries


def lag(conn: sqlite3.Connection) -> int:
    """Entries accepted but not yet ingested."""
    return int(conn.execute("SELECT count(*) FROM journal WHERE state = 'accepted'").fetchone()[0])
