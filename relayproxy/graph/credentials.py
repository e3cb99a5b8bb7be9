"""Stored credentials of members who opted in to continuous sync: sealed tokens only.

The graph never sees a password: relayproxy/sealing.py seals it with a key kept outside the
database, and this module stores and deletes the opaque token (DESIGN.md: SQL lives here).
"""

from __future__ import annotations

import sqlite3


def save(conn: sqlite3.Connection, member: str, sealed: bytes, now: str) -> None:
    """Store (or replace) `member`'s sealed credential."""
    conn.execute(
        """INSERT INTO sync_credentials (member, sealed, created_at) VALUES (?, ?, ?)
           ON CONFLICT (member) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at""",
        (member, sealed, now),
    )


def delete(conn: sqlite3.Connection, member: str) -> bool:
    """Forget `member`'s credential and their watchers' positions; True when one was stored."""
    found = conn.execute("DELETE FROM sync_credentials WHERE member = ?", (member,)).rowcount > 0
    conn.execute("DELETE FROM watch_state WHERE member = ?", (member,))
    return found


def stored(conn: sqlite3.Connection, member: str) -> bool:
    """Whether `member` opted in (a credential is stored)."""
    return conn.execute("SELECT 1 FROM sync_credentials WHERE member = ?", (member,)).fetchone() is not None


def all_sealed(conn: sqlite3.Connection) -> list[tuple[str, bytes]]:
    """(member, sealed token) of every member who opted in."""
    return [(str(m), bytes(s)) for m, s in conn.execute("SELECT member, sealed FROM sync_credentials ORDER BY member")]
