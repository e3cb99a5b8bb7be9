"""Reading the graph: people and companies in the JSON shapes of DESIGN.md.

Per-member figures come from `stats`; the team's figures are computed over distinct messages
in `interactions` (one message to two members counts once). Connection strength is computed
from the interactions on read, with a fixed `now`, so it decays without any rewriting.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relayproxy.graph.strength import NO_CONNECTION, Interaction, Strength, strength, strongest


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class Connection:
    """A person's relationship with the team: per member, and the team as a whole."""

    by_member: dict[str, Strength] = field(default_factory=dict)

    @property
    def team(self) -> Strength:
        if not self.by_member:
            return NO_CONNECTION
        return max(self.by_member.values(), key=lambda s: s.score)

    @property
    def degree(self) -> str:
        return strongest(s.degree for s in self.by_member.values())


def connections(
    conn: sqlite3.Connection, now: datetime, person_ids: Iterable[int] | None = None
) -> dict[int, Connection]:
    """Strength per person and member, from the interaction history."""
    histories: dict[tuple[int, str], list[Interaction]] = defaultdict(list)
    sql = (
        "SELECT i.person_id, m.login, i.at, i.outbound, i.recipients FROM interactions i"
        " JOIN members m ON m.id = i.member_id"
    )
    params: list[Any] = []
    if person_ids is not None:
        ids = list(person_ids)
        sql += f" WHERE i.person_id IN ({','.join('?' * len(ids))})"
        params = ids
    for person_id, login, at, outbound, recipients in conn.execute(sql, params):
        histories[(person_id, login)].append(Interaction(parse_iso(at), bool(outbound), recipients))
    result: dict[int, Connection] = defaultdict(Connection)
    for (person_id, login), history in histories.items():
        result[person_id].by_member[login] = strength(history, now)
    return result


_TEAM_STATS = """
    SELECT person_id, min(at), max(at),
           count(DISTINCT CASE WHEN outbound THEN message_id END),
           count(DISTINCT CASE WHEN NOT outbound THEN message_id END)
    FROM interactions GROUP BY person_id
"""


def people(conn: sqlite3.Connection, now: datetime) -> list[dict[str, Any]]:
    """Every person as the team sees them, in the export/API item shape, by id."""
    emails: dict[int, list[str]] = defaultdict(list)
    for person_id, address in conn.execute("SELECT person_id, address FROM addresses ORDER BY rowid"):
        emails[person_id].append(address)
    team = {row[0]: row[1:] for row in conn.execute(_TEAM_STATS)}
    strengths = connections(conn, now)
    items = []
    for person_id, name, company_id, company_name, company_domain, job_title, phones, links in conn.execute(
        "SELECT p.id, p.name, c.id, c.name, c.domain, p.job_title, p.phones, p.links FROM people p"
        " LEFT JOIN companies c ON c.id = p.company_id ORDER BY p.id"
    ):
        first, last, sent, received = team.get(person_id, (None, None, 0, 0))
        connection = strengths.get(person_id, Connection())
        items.append(
            {
                "id": person_id,
                "name": name,
                "emails": emails.get(person_id, []),
                "company": {"id": company_id, "name": company_name, "domain": company_domain}
                if company_id is not None
                else None,
                "first_contacted": first,
                "last_contacted": last,
                "messages_sent": sent,
                "messages_received": received,
                "strength": connection.degree,
                "strength_by_member": {m: s.degree for m, s in sorted(connection.by_member.items())},
                "job_title": job_title,  # enrichment: effective values (graph/enrich_store.py)
                "phones": json.loads(phones),
                "links": json.loads(links),
            }
        )
    return items


def companies(conn: sqlite3.Connection, now: datetime) -> list[dict[str, Any]]:
    """Every company in the export item shape, by id."""
    domains: dict[int, list[str]] = defaultdict(list)
    for company_id, domain in conn.execute("SELECT company_id, domain FROM company_domains ORDER BY rowid"):
        domains[company_id].append(domain)
    people_of: dict[int, list[int]] = defaultdict(list)
    for person_id, company_id in conn.execute("SELECT id, company_id FROM people WHERE company_id IS NOT NULL"):
        people_of[company_id].append(person_id)
    stats = {
        row[0]: row[1:]
        for row in conn.execute(
            """SELECT p.company_id, min(i.at), max(i.at),
                      count(DISTINCT CASE WHEN i.outbound THEN i.message_id END),
                      count(DISTINCT CASE WHEN NOT i.outbound THEN i.message_id END)
               FROM interactions i JOIN people p ON p.id = i.person_id
               WHERE p.company_id IS NOT NULL GROUP BY p.company_id"""
        )
    }
    strengths = connections(conn, now)
    items = []
    for company_id, name, domain, description, website in conn.execute(
        "SELECT id, name, domain, description, website FROM companies ORDER BY id"
    ):
        first, last, sent, received = stats.get(company_id, (None, None, 0, 0))
        members = people_of.get(company_id, [])
        degree = strongest(strengths[p].degree for p in members if p in strengths)
        items.append(
            {
                "id": company_id,
                "name": name,
                "domain": domain,
                "people": len(members),
                "first_contacted": first,
                "last_contacted": last,
                "messages_sent": sent,
                "messages_received": received,
                "strength": degree,
                "domains": domains.get(company_id, [domain]),
                "description": description,
                "website": website,
            }
        )
    return items


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Row counts of the main tables (for summaries and health)."""
    tables = ("people", "companies", "messages", "interactions", "attachments", "unparsable")
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
