"""Merging two people into one: an explicit action on the site and in the API.

The person kept gets the other's addresses, interactions and private marks; per-member stats
are recomputed from the interactions (one message with both addresses counts once); the other
person is deleted. Ingest caches addresses → people, so it is told to forget them.
"""

from __future__ import annotations

import sqlite3

from relayproxy.graph import enrich_store, views
from relayproxy.graph.ingest import invalidate_caches


class MergeError(ValueError):
    """Two people that cannot be merged; the message says why."""


def merge_people(conn: sqlite3.Connection, keep: int, other: int) -> None:
    """Fold person `other` into person `keep` (writer thread, in its transaction)."""
    if keep == other:
        raise MergeError("Choose two different people to merge.")
    rows = {r[0]: r for r in conn.execute("SELECT id, company_id FROM people WHERE id IN (?, ?)", (keep, other))}
    if len(rows) != 2:
        raise MergeError("One of the two people does not exist (any more).")
    conn.execute("UPDATE addresses SET person_id = ? WHERE person_id = ?", (keep, other))
    conn.execute(
        """INSERT OR IGNORE INTO interactions (member_id, person_id, message_id, outbound, at, recipients)
           SELECT member_id, ?, message_id, outbound, at, recipients FROM interactions WHERE person_id = ?""",
        (keep, other),
    )
    conn.execute("DELETE FROM interactions WHERE person_id = ?", (other,))
    conn.execute(
        "INSERT OR IGNORE INTO private_people (member_id, person_id) SELECT member_id, ? FROM private_people"
        " WHERE person_id = ?",
        (keep, other),
    )
    conn.execute("DELETE FROM private_people WHERE person_id = ?", (other,))
    if rows[keep][1] is None and rows[other][1] is not None:
        conn.execute("UPDATE people SET company_id = ? WHERE id = ?", (rows[other][1], keep))
    conn.execute("DELETE FROM stats WHERE person_id IN (?, ?)", (keep, other))
    conn.execute(
        """INSERT INTO stats (member_id, person_id, first_at, last_at, sent, received, last_in, last_out)
           SELECT member_id, person_id, min(at), max(at),
                  count(DISTINCT CASE WHEN outbound THEN message_id END),
                  count(DISTINCT CASE WHEN NOT outbound THEN message_id END),
                  max(CASE WHEN NOT outbound THEN at END), max(CASE WHEN outbound THEN at END)
           FROM interactions WHERE person_id = ? GROUP BY member_id, person_id""",
        (keep,),
    )
    enrich_store.merge_people(conn, keep, other)  # enrichment (issue 8): facts and overrides follow
    conn.execute("DELETE FROM people WHERE id = ?", (other,))
    invalidate_caches()
    views.changed()
