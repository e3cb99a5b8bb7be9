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
from typing import IO

from relayproxy.graph.ingest import iso

_CHUNK = 1024 * 1024


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


def add_many(conn: sqlite3.Connection, items: Sequence[tuple[bytes, str, str]], *, now: datetime) -> None:
    """Journal several messages read over IMAP (accepted at once: nobody refuses a read)."""
    created = iso(now)
    conn.executemany(
        "INSERT INTO journal (member, source, recipients, state, raw, created_at)"
        " VALUES (?, ?, 'null', 'accepted', ?, ?)",
        [(member, source, raw, created) for raw, member, source in items],
    )


def add_file(conn: sqlite3.Connection, file: IO[bytes], size: int, member: str, source: str, *, now: datetime) -> int:
    """Journal a message from a file, copied in chunks so it is never whole in memory."""
    cursor = conn.execute(
        "INSERT INTO journal (member, source, recipients, state, raw, created_at)"
        " VALUES (?, ?, 'null', 'accepted', zeroblob(?), ?)",
        (member, source, size, iso(now)),
    )
    entry_id = int(cursor.lastrowid or 0)
    file.seek(0)
    with conn.blobopen("journal", "raw", entry_id) as blob:
        while chunk := file.read(min(_CHUNK, size - blob.tell())):
            blob.write(chunk)
    return entry_id


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


def refs(conn: sqlite3.Connection, limit: int) -> list[Entry]:
    """Up to `limit` accepted entries, oldest first, without their bytes (`raw` is b"")."""
    rows = conn.execute(
        "SELECT id, member, source, recipients, created_at FROM journal WHERE state = 'accepted' ORDER BY id LIMIT ?",
        (limit,),
    ).fetchall()
    return [Entry(i, m, s, _recipients(r), b"", c) for i, m, s, r, c in rows]


def raw(conn: sqlite3.Connection, entry_id: int) -> bytes | None:
    """The bytes of one entry, or None when it is gone."""
    row = conn.execute("SELECT raw FROM journal WHERE id = ?", (entry_id,)).fetchone()
    return bytes(row[0]) if row else None


def _recipients(text: str | None) -> tuple[str, ...] | None:
    parsed = json.loads(text) if text else None
    return tuple(parsed) if parsed is not None else None


def lag(conn: sqlite3.Connection) -> int:
    """Entries accepted but not yet ingested."""
    return int(conn.execute("SELECT count(*) FROM journal WHERE state = 'accepted'").fetchone()[0])
