"""What members change on the settings page: sharing, exceptions, private marks, exclusions.

Each function runs in the writer thread (`await store.write(lambda conn: ...)`). Anything that
changes who is a person (exclusions) tells ingest through `invalidate_caches()`; everything
tells the web's list index through `views.changed()`.
"""

from __future__ import annotations

import re
import sqlite3

from relayproxy.graph import views
from relayproxy.graph.ingest import invalidate_caches
from relayproxy.graph.visibility import LEVELS


class SettingError(ValueError):
    """A setting that cannot be stored; the message says why."""


_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
_ADDRESS = re.compile(r"^[^@\s]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")


def _level(level: str) -> str:
    if level not in LEVELS:
        raise SettingError(f'"{level}" is not a sharing level; use one of {", ".join(LEVELS)}.')
    return level


def set_sharing(conn: sqlite3.Connection, member_id: int, level: str) -> None:
    """The level `member_id` shares their mail at with the whole team (wins over the config)."""
    conn.execute("UPDATE members SET sharing_override = ? WHERE id = ?", (_level(level), member_id))
    views.changed()


def set_exception(conn: sqlite3.Connection, member_id: int, viewer_login: str, level: str | None) -> None:
    """Share with one teammate at `level` instead (None removes the exception)."""
    row = conn.execute("SELECT id FROM members WHERE login = ? AND in_config = 1", (viewer_login.lower(),)).fetchone()
    if row is None or row[0] == member_id:
        raise SettingError(f"{viewer_login} is not another member of the team.")
    if level is None or level == "":
        conn.execute("DELETE FROM sharing_exceptions WHERE member_id = ? AND viewer_id = ?", (member_id, row[0]))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO sharing_exceptions (member_id, viewer_id, level) VALUES (?, ?, ?)",
            (member_id, row[0], _level(level)),
        )
    views.changed()


def mark_message_private(conn: sqlite3.Connection, member_id: int, message_id: int, private: bool) -> bool:
    """Mark the member's own copy of a message private (or not); False when they hold no copy."""
    cursor = conn.execute(
        "UPDATE copies SET private = ? WHERE member_id = ? AND message_id = ?", (int(private), member_id, message_id)
    )
    views.changed()
    return cursor.rowcount > 0


def mark_person_private(conn: sqlite3.Connection, member_id: int, person_id: int, private: bool) -> bool:
    """Hide the member's mail with a person from the rest of the team (or show it again)."""
    if conn.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone() is None:
        return False
    if private:
        conn.execute(
            "INSERT OR IGNORE INTO private_people (member_id, person_id) VALUES (?, ?)", (member_id, person_id)
        )
    else:
        conn.execute("DELETE FROM private_people WHERE member_id = ? AND person_id = ?", (member_id, person_id))
    views.changed()
    return True


def normalise_pattern(pattern: str) -> str:
    """An exclusion as stored: a lower-case address, or a domain without a leading @."""
    text = pattern.strip().lower()
    if "@" in text and not text.startswith("@"):
        if not _ADDRESS.match(text):
            raise SettingError(f'"{pattern}" is not an email address.')
        return text
    text = text.lstrip("@")
    if not _DOMAIN.match(text):
        raise SettingError(f'"{pattern}" is neither an email address nor a domain like "example.org".')
    return text


def add_exclusion(conn: sqlite3.Connection, member_id: int, pattern: str, now: str) -> str:
    """Exclude an address or a domain: hidden now, not captured from then on."""
    text = normalise_pattern(pattern)
    conn.execute(
        "INSERT OR IGNORE INTO exclusions (pattern, created_by, created_at) VALUES (?, ?, ?)", (text, member_id, now)
    )
    invalidate_caches()
    views.changed()
    return text


def remove_exclusion(conn: sqlite3.Connection, pattern: str) -> None:
    """Capture an address or domain again (what was hidden shows again)."""
    conn.execute("DELETE FROM exclusions WHERE pattern = ?", (pattern.strip().lower(),))
    invalidate_caches()
    views.changed()
