"""Who may see what: the one place relayproxy decides a viewer's access to a message.

Theory of operation. A message reaches the graph through members' *copies*. A viewer always
sees their own mail (a message they hold a copy of, or one they sent or received). Anyone
else's copy is seen at the level its owner grants that viewer: the owner's exception for the
viewer (`sharing_exceptions`), else the level set on the settings page
(`members.sharing_override`), else the config file's `members.sharing`. Levels:

    metadata  participants and dates
    subject   + the subject
    full      + the text and the attachments

A copy marked private (`copies.private`), or a copy whose owner marked one of the message's
people private (`private_people`), shows nothing to others. A message several members hold is
visible at the most open level among the copies that are not private; a message nobody holds
(imported with no member) is team metadata. What enrichment read in a message's text (a
signature's job title and phone, a vCard) follows that message: it is shown only to viewers for
whom the message is `readable`. Every page, JSON answer, CSV row and attachment download asks
`levels` (or `hidden_messages` for whole-graph lists), never its own SQL.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

LEVELS = ("metadata", "subject", "full")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}
OWN = "own"  # the viewer's own mail: everything, like "full"


def at_least(level: str | None, wanted: str) -> bool:
    """True when `level` (a LEVELS entry, OWN or None for hidden) shows what `wanted` shows."""
    if level is None:
        return False
    if level == OWN:
        return True
    return _RANK[level] >= _RANK[wanted]


@dataclass(frozen=True)
class Viewer:
    """A signed-in team member."""

    id: int
    login: str
    name: str


def viewer(conn: sqlite3.Connection, login: str) -> Viewer | None:
    """The member row for `login`, or None when the database does not know it."""
    row = conn.execute("SELECT id, login, name FROM members WHERE login = ?", (login.lower(),)).fetchone()
    return Viewer(int(row[0]), row[1], row[2]) if row else None


def grants(conn: sqlite3.Connection, viewer_id: int) -> dict[int, str]:
    """The level each member grants `viewer_id` (exception, else override, else config)."""
    levels = {
        int(member_id): level
        for member_id, level in conn.execute("SELECT id, coalesce(sharing_override, sharing) FROM members")
    }
    for member_id, level in conn.execute(
        "SELECT member_id, level FROM sharing_exceptions WHERE viewer_id = ?", (viewer_id,)
    ):
        levels[int(member_id)] = level
    return levels


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _private_copies(conn: sqlite3.Connection, message_ids: list[int]) -> set[tuple[int, int]]:
    """(message, member) copies hidden from others: marked private, or about a private person."""
    hidden: set[tuple[int, int]] = set()
    for chunk in _chunks(message_ids):
        marks = ",".join("?" * len(chunk))
        hidden.update(
            (int(m), int(o))
            for m, o in conn.execute(
                f"SELECT message_id, member_id FROM copies WHERE private = 1 AND message_id IN ({marks})", chunk
            )
        )
        hidden.update(
            (int(m), int(o))
            for m, o in conn.execute(
                f"""SELECT DISTINCT p.message_id, pp.member_id FROM private_people pp
                    JOIN addresses a ON a.person_id = pp.person_id
                    JOIN participants p ON p.address = a.address
                    WHERE p.message_id IN ({marks})""",
                chunk,
            )
        )
    return hidden


def levels(conn: sqlite3.Connection, viewer_id: int, message_ids: Iterable[int]) -> dict[int, str | None]:
    """How much of each message `viewer_id` may see: OWN, a LEVELS entry, or None (hidden)."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    granted = grants(conn, viewer_id)
    copies: dict[int, list[int]] = defaultdict(list)
    own: set[int] = set()
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for message_id, member_id in conn.execute(
            f"SELECT message_id, member_id FROM copies WHERE message_id IN ({marks})", chunk
        ):
            copies[int(message_id)].append(int(member_id))
            if member_id == viewer_id:
                own.add(int(message_id))
        own.update(
            int(row[0])
            for row in conn.execute(
                f"SELECT DISTINCT message_id FROM interactions WHERE member_id = ? AND message_id IN ({marks})",
                [viewer_id, *chunk],
            )
        )
    private = _private_copies(conn, [i for i in ids if i not in own])
    result: dict[int, str | None] = {}
    for message_id in ids:
        if message_id in own:
            result[message_id] = OWN
            continue
        holders = copies.get(message_id)
        if not holders:
            result[message_id] = "metadata"  # nobody's copy: imported without a member
            continue
        open_levels = [granted.get(m, "metadata") for m in holders if (message_id, m) not in private]
        result[message_id] = max(open_levels, key=_RANK.__getitem__) if open_levels else None
    return result


def level(conn: sqlite3.Connection, viewer_id: int, message_id: int) -> str | None:
    """`levels` for one message."""
    return levels(conn, viewer_id, [message_id]).get(message_id)


def readable(conn: sqlite3.Connection, viewer_id: int, message_ids: Iterable[int | None]) -> set[int]:
    """Of `message_ids`, those whose text and attachments `viewer_id` may see (own, or "full")."""
    seen = levels(conn, viewer_id, [m for m in message_ids if m is not None])
    return {m for m, lv in seen.items() if at_least(lv, "full")}


def restricted_messages(conn: sqlite3.Connection) -> set[int]:
    """Messages some copy of which is private (the only ones that can be hidden from anyone)."""
    # CROSS JOIN fixes the order: start from the (few) private marks, not from every participant.
    rows = conn.execute(
        """SELECT message_id FROM copies WHERE private = 1
           UNION
           SELECT p.message_id FROM private_people pp
           CROSS JOIN addresses a ON a.person_id = pp.person_id
           CROSS JOIN participants p ON p.address = a.address
           CROSS JOIN copies c ON c.message_id = p.message_id AND c.member_id = pp.member_id"""
    )
    return {int(row[0]) for row in rows}


def hidden_messages(conn: sqlite3.Connection, viewer_id: int, restricted: Iterable[int]) -> frozenset[int]:
    """Of the `restricted` messages, those `viewer_id` may not see at all."""
    return frozenset(m for m, lv in levels(conn, viewer_id, restricted).items() if lv is None)


def private_people(conn: sqlite3.Connection) -> dict[int, set[int]]:
    """Person id → the members who marked that person private."""
    marked: dict[int, set[int]] = defaultdict(set)
    for member_id, person_id in conn.execute("SELECT member_id, person_id FROM private_people"):
        marked[int(person_id)].add(int(member_id))
    return marked


def excluded_people(conn: sqlite3.Connection) -> set[int]:
    """People with an address on the exclusion list (an address, or a domain and its subdomains)."""
    patterns = [row[0] for row in conn.execute("SELECT pattern FROM exclusions")]
    if not patterns:
        return set()
    addresses = {p for p in patterns if "@" in p}
    domains = tuple(p.lstrip("@") for p in patterns if "@" not in p)
    excluded: set[int] = set()
    for address, person_id in conn.execute("SELECT address, person_id FROM addresses"):
        domain = address.rpartition("@")[2]
        if address in addresses or any(domain == d or domain.endswith("." + d) for d in domains):
            excluded.add(int(person_id))
    return excluded
