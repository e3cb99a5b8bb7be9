"""What the web site and the JSON API show, as a signed-in member may see it.

Theory of operation. Lists (people, companies) need every person's team figures and strength,
which come from the whole interaction history: too slow to compute per request. `Views` builds
an in-memory `_Index` (people, addresses, companies and each person's per-member history) once,
and keeps it while the graph's `token` — an in-process generation bumped on every ingested
batch and every settings change, plus the highest message and person ids (changes made by
another process) — stays the same, and for at most `max_age` seconds (strength decays with
time). Each viewer's list starts from the index and recomputes only the people their hidden
messages or private marks touch: visibility is decided by `relayproxy.graph.visibility`, never
here. Pages of one person, company or message query SQLite directly.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relayproxy.graph import enrich_store, visibility
from relayproxy.graph.strength import (
    DEGREES,
    NO_CONNECTION,
    Interaction,
    Strength,
    degree_rank,
    strength,
    strongest,
)
from relayproxy.graph.text import html_to_text
from relayproxy.graph.visibility import OWN, Viewer, at_least

SORTS = ("strength", "last_contacted", "name")
_generation = 0
_lock = threading.Lock()


def changed() -> None:
    """Tell every `Views` that the graph changed (ingested mail, settings, merges)."""
    global _generation
    _generation += 1


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# One interaction as the index keeps it: (at text, at, outbound, recipients, message id).
_Row = tuple[str, datetime, bool, int, int]


@dataclass
class _Person:
    name: str
    emails: list[str]
    company: dict[str, Any] | None
    enriched: enrich_store.Enriched = (None, [], [])  # job title, phones, links, as everyone may see them...
    facts: list[enrich_store.Fact] = field(default_factory=list)  # ...unless a fact comes from mail they may not read
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Figures:
    """A person's figures for one viewer: the item, the score and the message ids each way."""

    item: dict[str, Any]
    score: float
    by_member: dict[str, Strength]
    sent: set[int]
    received: set[int]


@dataclass
class _Index:
    token: tuple[int, ...]
    built: float
    now: datetime
    people: dict[int, _Person]
    histories: dict[int, dict[str, list[_Row]]]
    logins: dict[int, str]
    companies: dict[int, tuple[str, str, str | None, str | None, list[str]]]
    excluded: set[int]
    restricted: set[int]
    private: dict[int, set[int]]
    base: dict[int, _Figures] = field(default_factory=dict)
    viewers: dict[int, _ViewerList] = field(default_factory=dict)
    enrichment: dict[int, _Enrichment] = field(default_factory=dict)  # by viewer


@dataclass
class _Enrichment:
    """What one viewer sees of people's enrichment where it differs from `_Person.enriched`
    (some of its facts come from mail the viewer may not read), and whom to check again."""

    shown: dict[int, enrich_store.Enriched] = field(default_factory=dict)
    recheck: set[int] | None = None  # people whose mail changed since; None: everyone
    items: dict[int, tuple[_Figures, _Figures]] = field(default_factory=dict)  # (from, with `shown`)

    def apply(self, figures: dict[int, _Figures]) -> None:
        """Put `shown` into the viewer's figures, reusing the figures made last time from the same ones."""
        for pid, (title, phones, links) in self.shown.items():
            figure = figures.get(pid)
            if figure is None:
                continue
            made = self.items.get(pid)
            if made is None or made[0] is not figure:
                item = {**figure.item, "job_title": title, "phones": phones, "links": links}
                made = self.items[pid] = (figure, dataclasses.replace(figure, item=item))
            figures[pid] = made[1]


@dataclass
class _ViewerList:
    figures: dict[int, _Figures]
    hidden: frozenset[int]
    haystack: dict[int, str] = field(default_factory=dict)  # what a name search looks in
    sorted: dict[str, list[int]] = field(default_factory=dict)
    companies: list[dict[str, Any]] | None = None


def token(conn: sqlite3.Connection) -> tuple[int, ...]:
    """What the index depends on; cheap (three index look-ups)."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM messages), (SELECT coalesce(max(id), 0) FROM people),"
        " (SELECT count(*) FROM addresses)"
    ).fetchone()
    return (_generation, int(row[0]), int(row[1]), int(row[2]))


def _companies(conn: sqlite3.Connection) -> dict[int, tuple[str, str, str | None, str | None, list[str]]]:
    companies: dict[int, tuple[str, str, str | None, str | None, list[str]]] = {}
    for cid, name, domain, description, website in conn.execute(
        "SELECT id, name, domain, description, website FROM companies"
    ):
        companies[int(cid)] = (name, domain, description, website, [])
    for domain, cid in conn.execute("SELECT domain, company_id FROM company_domains ORDER BY rowid"):
        if cid in companies:
            companies[cid][4].append(domain)
    return companies


def _where(column: str, ids: set[int] | None) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause restricting `column` to `ids` (all rows for None), as one JSON parameter."""
    if ids is None:
        return "", ()
    return f" WHERE {column} IN (SELECT value FROM json_each(?))", (json.dumps(sorted(ids)),)


def _load_people(conn: sqlite3.Connection, index: _Index, ids: set[int] | None) -> None:
    """(Re)load people, their addresses and interaction histories: every one, or `ids`."""
    companies = index.companies
    where, params = _where("id", ids)
    for pid, name, cid, title, phones, links in conn.execute(
        f"SELECT id, name, company_id, job_title, phones, links FROM people{where}", params
    ):
        company = None
        if cid is not None and cid in companies:
            company = {"id": cid, "name": companies[cid][0], "domain": companies[cid][1]}
        index.people[int(pid)] = _Person(name, [], company, (title, json.loads(phones), json.loads(links)))
    for pid, facts in enrich_store.person_facts(conn, ids).items():
        if pid in index.people:
            index.people[pid].facts = facts
    for pid, overrides in enrich_store.overrides_of(conn, "person", ids).items():
        if pid in index.people:
            index.people[pid].overrides = overrides
    where, params = _where("person_id", ids)
    for address, pid in conn.execute(f"SELECT address, person_id FROM addresses{where} ORDER BY rowid", params):
        if pid in index.people:
            index.people[pid].emails.append(address)
    for pid in ids or ():
        index.histories.pop(pid, None)
    parse = datetime.fromisoformat
    logins = index.logins
    for member_id, pid, mid, outbound, at, recipients in conn.execute(
        f"SELECT member_id, person_id, message_id, outbound, at, recipients FROM interactions{where}", params
    ):
        index.histories[pid][logins[member_id]].append((at, parse(at), bool(outbound), recipients, mid))


def _load(conn: sqlite3.Connection, now: datetime) -> _Index:
    index = _Index(
        token(conn),
        time.monotonic(),
        now,
        {},
        defaultdict(lambda: defaultdict(list)),
        {int(i): login for i, login in conn.execute("SELECT id, login FROM members")},
        _companies(conn),
        visibility.excluded_people(conn),
        visibility.restricted_messages(conn),
        visibility.private_people(conn),
    )
    _load_people(conn, index, None)
    return index


def _update(conn: sqlite3.Connection, index: _Index, message_ids: list[int]) -> None:
    """Fold freshly ingested messages into the index: only the people on them are recomputed."""
    where, params = _where("message_id", set(message_ids))
    people = {int(r[0]) for r in conn.execute(f"SELECT DISTINCT person_id FROM interactions{where}", params)}
    people.update(
        int(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT a.person_id FROM participants p JOIN addresses a ON a.address = p.address{where}",
            params,
        )
    )
    index.logins = {int(i): login for i, login in conn.execute("SELECT id, login FROM members")}
    index.companies = _companies(conn)
    index.restricted = visibility.restricted_messages(conn)
    index.private = visibility.private_people(conn)
    _load_people(conn, index, people)
    for pid in people:
        figures = _figures(index, pid, frozenset()) if pid in index.people and pid not in index.excluded else None
        if figures is None:
            index.base.pop(pid, None)
        else:
            index.base[pid] = figures
    index.viewers.clear()
    for seen in index.enrichment.values():
        if seen.recheck is not None:
            seen.recheck.update(people)
    index.token = token(conn)


def _figures(index: _Index, pid: int, hidden: frozenset[int], dropped: Iterable[str] = ()) -> _Figures | None:
    """One person's item for a viewer who may not see `hidden` messages nor `dropped` members' mail."""
    person = index.people[pid]
    by_member: dict[str, Strength] = {}
    sent: set[int] = set()
    received: set[int] = set()
    first = last = None
    skip = set(dropped)
    for login, rows in index.histories.get(pid, {}).items():
        if login in skip:
            continue
        if hidden:
            rows = [r for r in rows if r[4] not in hidden]
        if not rows:
            continue
        by_member[login] = strength([Interaction(r[1], r[2], r[3]) for r in rows], index.now)
        for at, _, outbound, _, mid in rows:
            (sent if outbound else received).add(mid)
            if first is None or at < first:
                first = at
            if last is None or at > last:
                last = at
    if skip and not by_member:
        return None  # known to this viewer only through mail marked private
    team = max(by_member.values(), key=lambda s: s.score) if by_member else NO_CONNECTION
    item = {
        "id": pid,
        "name": person.name,
        "emails": list(person.emails),
        "company": dict(person.company) if person.company else None,
        "first_contacted": first,
        "last_contacted": last,
        "messages_sent": len(sent),
        "messages_received": len(received),
        "strength": strongest(s.degree for s in by_member.values()),
        "strength_by_member": {m: s.degree for m, s in sorted(by_member.items())},
        "job_title": person.enriched[0],  # enrichment (issue 8)
        "phones": list(person.enriched[1]),
        "links": list(person.enriched[2]),
    }
    return _Figures(item, team.score, by_member, sent, received)


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: each word quoted, all required (no FTS syntax injection)."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    return " ".join('"' + w.replace('"', "") + '"' for w in words[:12])


def _sort_key(sort: str) -> Callable[[_Figures], Any]:
    if sort == "name":
        return lambda f: (f.item["name"].casefold(), f.item["id"])
    if sort == "last_contacted":
        return lambda f: f.item["last_contacted"] or ""
    return lambda f: f.score


class Views:
    """Queries for pages and the API, with the list index cached between requests."""

    def __init__(self, now: Callable[[], datetime] = now_utc, max_age: float = 300.0) -> None:
        self._now = now
        self.max_age = max_age
        self._index: _Index | None = None
        self._lock = threading.Lock()
        self._ingested: list[int] = []

    def ingested(self, message_ids: list[int]) -> None:
        """Ingest added or changed these messages (any thread): the next read folds them in."""
        with self._lock:
            self._ingested.extend(message_ids)

    # --- the index -----------------------------------------------------------------------

    def _current(self, conn: sqlite3.Connection) -> _Index:
        with self._lock:
            index = self._index
            pending, self._ingested = self._ingested, []
            fresh = (
                index is not None and index.token[0] == _generation and time.monotonic() - index.built < self.max_age
            )
            if index is not None and fresh and pending:
                _update(conn, index, pending)
            if index is None or index.token != token(conn) or not fresh:
                index = self._index = _load(conn, self._now())
                for pid in index.people:
                    if pid not in index.excluded:
                        figures = _figures(index, pid, frozenset())
                        if figures is not None:
                            index.base[pid] = figures
            return index

    def _viewer_list(self, conn: sqlite3.Connection, viewer: Viewer) -> tuple[_Index, _ViewerList]:
        index = self._current(conn)
        with self._lock:
            found = index.viewers.get(viewer.id)
            if found is not None:
                return index, found
        hidden = visibility.hidden_messages(conn, viewer.id, index.restricted)
        affected: set[int] = set()
        if hidden:
            for chunk in _chunks(sorted(hidden)):
                affected.update(
                    int(r[0])
                    for r in conn.execute(
                        "SELECT DISTINCT person_id FROM interactions"
                        f" WHERE message_id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
        figures = dict(index.base)
        for pid in affected | set(index.private):
            if pid not in index.people or pid in index.excluded:
                continue
            dropped = [index.logins[m] for m in index.private.get(pid, ()) if m != viewer.id and m in index.logins]
            result = _figures(index, pid, hidden, dropped)
            if result is None:
                figures.pop(pid, None)
            else:
                figures[pid] = result
        with self._lock:
            _enrichment_seen(conn, index, viewer).apply(figures)
        listing = _ViewerList(figures, hidden)
        with self._lock:
            index.viewers[viewer.id] = listing
        return index, listing

    def _sorted(self, listing: _ViewerList, sort: str) -> list[int]:
        order = listing.sorted.get(sort)
        if order is None:
            ordered = sorted(listing.figures.values(), key=_sort_key(sort), reverse=sort != "name")
            order = listing.sorted[sort] = [f.item["id"] for f in ordered]
        return order

    # --- lists ---------------------------------------------------------------------------

    def people(
        self,
        conn: sqlite3.Connection,
        viewer: Viewer,
        *,
        q: str = "",
        sort: str = "strength",
        degree: str = "",
        member: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of people in the DESIGN item shape, and how many match in all."""
        _, listing = self._viewer_list(conn, viewer)
        order = self._sorted(listing, sort if sort in SORTS else "strength")
        matches: set[int] | None = None
        if q.strip():
            matches = self._search(conn, viewer, listing, q)
        elif not degree and not member:
            return [listing.figures[pid].item for pid in order[offset : offset + limit]], len(order)
        chosen = []
        for pid in order:
            if matches is not None and pid not in matches:
                continue
            item = listing.figures[pid].item
            if degree and item["strength"] != degree:
                continue
            if member and member not in item["strength_by_member"]:
                continue
            chosen.append(item)
        return chosen[offset : offset + limit], len(chosen)

    def all_people(self, conn: sqlite3.Connection, viewer: Viewer) -> list[dict[str, Any]]:
        """Every person the viewer may see, by id (the CSV export)."""
        _, listing = self._viewer_list(conn, viewer)
        return [listing.figures[pid].item for pid in sorted(listing.figures)]

    def _search(self, conn: sqlite3.Connection, viewer: Viewer, listing: _ViewerList, q: str) -> set[int]:
        needle = q.strip().casefold()
        if not listing.haystack:
            for pid, figures in listing.figures.items():
                item = figures.item
                company = item["company"] or {}
                listing.haystack[pid] = "\n".join(
                    [
                        item["name"].casefold(),
                        *item["emails"],
                        (company.get("name") or "").casefold(),
                        company.get("domain") or "",
                    ]
                )
        found = {pid for pid, hay in listing.haystack.items() if needle in hay}
        found.update(pid for pid in self._text_search(conn, viewer, q) if pid in listing.figures)
        return found

    @staticmethod
    def _text_search(conn: sqlite3.Connection, viewer: Viewer, q: str, limit: int = 2000) -> set[int]:
        """People on the messages whose text (full level) or subject (subject level) match `q`."""
        query = fts_query(q)
        if not query:
            return set()
        try:
            in_text = [
                r[0]
                for r in conn.execute(
                    "SELECT rowid FROM message_text WHERE message_text MATCH ? LIMIT ?", (query, limit)
                )
            ]
            in_subject = {
                r[0]
                for r in conn.execute(
                    "SELECT rowid FROM message_text WHERE message_text MATCH ? LIMIT ?", (f"subject : ({query})", limit)
                )
            }
        except sqlite3.OperationalError:
            return set()
        seen = visibility.levels(conn, viewer.id, set(in_text) | in_subject)
        hits = [m for m, lv in seen.items() if at_least(lv, "full") or (m in in_subject and at_least(lv, "subject"))]
        people: set[int] = set()
        for chunk in _chunks(hits):
            people.update(
                int(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT a.person_id FROM participants p JOIN addresses a ON a.address = p.address"
                    f" WHERE p.message_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        return people

    def companies(self, conn: sqlite3.Connection, viewer: Viewer, *, q: str = "") -> list[dict[str, Any]]:
        """Companies in the export item shape, by strength then name; only people the viewer sees count."""
        index, listing = self._viewer_list(conn, viewer)
        if listing.companies is None:
            listing.companies = _company_items(index, listing)
        needle = q.strip().casefold()
        if not needle:
            return listing.companies
        return [
            c for c in listing.companies if needle in c["name"].casefold() or any(needle in d for d in c["domains"])
        ]

    def resolve_person(self, conn: sqlite3.Connection, viewer: Viewer, text: str) -> int | None:
        """A visible person named by id or by one of their addresses."""
        _, listing = self._viewer_list(conn, viewer)
        if text.isdigit():
            pid: int | None = int(text)
        else:
            row = conn.execute("SELECT person_id FROM addresses WHERE address = ?", (text.lower(),)).fetchone()
            pid = int(row[0]) if row else None
        return pid if pid in listing.figures else None

    # --- one thing -----------------------------------------------------------------------

    def person(self, conn: sqlite3.Connection, viewer: Viewer, person_id: int) -> dict[str, Any] | None:
        """A person page: the item plus addresses, per-member strength and visible messages."""
        index, listing = self._viewer_list(conn, viewer)
        figures = listing.figures.get(person_id)
        if figures is None:
            return None
        emails = figures.item["emails"]
        histories = index.histories.get(person_id, {})
        members = {
            login: {**s.as_dict(), **_counts(histories.get(login, []), listing.hidden)}
            for login, s in sorted(figures.by_member.items(), key=lambda kv: -kv[1].score)
        }
        team = max(figures.by_member.values(), key=lambda s: s.score) if figures.by_member else NO_CONNECTION
        marks = ",".join("?" * len(emails)) or "NULL"
        addresses = [
            {"address": a, "display_name": d}
            for a, d in conn.execute(
                f"SELECT address, display_name FROM addresses WHERE address IN ({marks}) ORDER BY rowid", emails
            )
        ]
        dates = {row[4]: row[0] for rows in histories.values() for row in rows}
        others = {
            r[0] for r in conn.execute(f"SELECT message_id FROM participants WHERE address IN ({marks})", emails)
        } - dates.keys()
        dates.update(_dates(conn, others))
        message_ids = sorted(dates, key=lambda m: dates[m], reverse=True)[:300]
        messages = message_summaries(conn, viewer, message_ids, limit=100)
        private = (
            conn.execute(
                "SELECT 1 FROM private_people WHERE member_id = ? AND person_id = ?", (viewer.id, person_id)
            ).fetchone()
            is not None
        )
        return {
            **figures.item,
            "addresses": addresses,
            "team_strength": team.as_dict(),
            "members": members,
            "messages": messages,
            "attachments": [a for m in messages for a in m["attachments"]],
            "private": private,
            "enrichment": enrich_store.person_details(conn, person_id, viewer.id),  # issue 8, with provenance
        }

    def company(self, conn: sqlite3.Connection, viewer: Viewer, company_id: int) -> dict[str, Any] | None:
        """A company page: its item, its people, the strongest connection and a timeline."""
        item = next((c for c in self.companies(conn, viewer) if c["id"] == company_id), None)
        if item is None:
            return None
        index, listing = self._viewer_list(conn, viewer)
        members = [
            listing.figures[p] for p in listing.figures if (index.people[p].company or {}).get("id") == company_id
        ]
        members.sort(key=lambda f: -f.score)
        best = None
        for f in members:
            for login, s in f.by_member.items():
                if best is None or s.score > best[2].score:
                    best = (f.item, login, s)
        dates = {
            row[4]: row[0] for f in members for rows in index.histories.get(f.item["id"], {}).values() for row in rows
        }
        message_ids = sorted(dates, key=lambda m: dates[m], reverse=True)[:200]
        return {
            **item,
            "people_list": [f.item for f in members],
            "strongest": {"person": best[0], "member": best[1], "strength": best[2].as_dict()} if best else None,
            "messages": message_summaries(conn, viewer, message_ids, limit=50),
            "enrichment": enrich_store.company_details(conn, company_id),  # issue 8: values with provenance
        }

    @staticmethod
    def message(conn: sqlite3.Connection, viewer: Viewer, message_id: int) -> dict[str, Any] | None:
        """A message as the viewer may see it, or None when it is hidden or absent."""
        found = message_summaries(conn, viewer, [message_id], limit=1, text=True)
        return found[0] if found else None

    @staticmethod
    def latest(conn: sqlite3.Connection, viewer: Viewer, limit: int = 30) -> list[dict[str, Any]]:
        """The latest messages between the team and people, newest first."""
        ids = [
            r[0]
            for r in conn.execute(
                """SELECT id FROM messages m WHERE automated = 0
                   AND EXISTS (SELECT 1 FROM interactions i WHERE i.message_id = m.id)
                   ORDER BY date DESC LIMIT ?""",
                (limit * 3,),
            )
        ]
        return message_summaries(conn, viewer, ids, limit=limit)

    @staticmethod
    def attachment(
        conn: sqlite3.Connection, viewer: Viewer, message_id: int, attachment_id: int
    ) -> tuple[str | None, dict[str, Any] | None]:
        """(the viewer's level for the message, the attachment row) — the caller needs level "full"."""
        row = conn.execute(
            "SELECT id, sha256, filename, content_type, size FROM attachments WHERE id = ? AND message_id = ?",
            (attachment_id, message_id),
        ).fetchone()
        if row is None:
            return None, None
        lv = visibility.level(conn, viewer.id, message_id)
        return lv, {"id": row[0], "sha256": row[1], "filename": row[2], "content_type": row[3], "size": row[4]}


def _chunks(items: list[Any], size: int = 900) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _counts(rows: list[_Row], hidden: frozenset[int]) -> dict[str, Any]:
    """One member's figures with a person, from the index rows the viewer may see."""
    visible = [r for r in rows if r[4] not in hidden]
    return {
        "first_contacted": min((r[0] for r in visible), default=None),
        "last_contacted": max((r[0] for r in visible), default=None),
        "messages_sent": sum(1 for r in visible if r[2]),
        "messages_received": sum(1 for r in visible if not r[2]),
    }


def _dates(conn: sqlite3.Connection, message_ids: Iterable[int]) -> dict[int, str]:
    ids = json.dumps(sorted(message_ids))
    return dict(conn.execute("SELECT id, date FROM messages WHERE id IN (SELECT value FROM json_each(?))", (ids,)))


def _enrichment_seen(conn: sqlite3.Connection, index: _Index, viewer: Viewer) -> _Enrichment:
    """Job titles, phones and links come from the text of mail (signatures, vCards): a viewer
    gets only those found in mail whose text they may read, chosen again without the others.
    Checks only the people whose mail changed since the last call."""
    seen = index.enrichment.setdefault(viewer.id, _Enrichment())
    people = index.people.keys() if seen.recheck is None else seen.recheck
    check = [pid for pid in people if pid in index.people and index.people[pid].facts]
    for pid in seen.recheck or ():
        seen.shown.pop(pid, None)
        seen.items.pop(pid, None)
    readable = visibility.readable(conn, viewer.id, {m for pid in check for _, _, m in index.people[pid].facts})
    for pid in check:
        person = index.people[pid]
        if not all(m in readable for _, _, m in person.facts):
            seen.shown[pid] = enrich_store.effective([f for f in person.facts if f[2] in readable], person.overrides)
    seen.recheck = set()
    return seen


def _company_items(index: _Index, listing: _ViewerList) -> list[dict[str, Any]]:
    grouped: dict[int, list[_Figures]] = defaultdict(list)
    for pid, figures in listing.figures.items():
        company = index.people[pid].company
        if company is not None:
            grouped[company["id"]].append(figures)
    items = []
    for cid, members in grouped.items():
        name, domain, description, website, domains = index.companies[cid]
        sent = set().union(*(f.sent for f in members))
        received = set().union(*(f.received for f in members))
        firsts = [f.item["first_contacted"] for f in members if f.item["first_contacted"]]
        lasts = [f.item["last_contacted"] for f in members if f.item["last_contacted"]]
        items.append(
            {
                "id": cid,
                "name": name,
                "domain": domain,
                "people": len(members),
                "first_contacted": min(firsts, default=None),
                "last_contacted": max(lasts, default=None),
                "messages_sent": len(sent),
                "messages_received": len(received),
                "strength": strongest(f.item["strength"] for f in members),
                "domains": domains or [domain],
                "description": description,
                "website": website,
            }
        )
    items.sort(key=lambda c: (-degree_rank(str(c["strength"])), str(c["name"]).casefold()))
    return items


def message_summaries(
    conn: sqlite3.Connection, viewer: Viewer, message_ids: list[int], *, limit: int, text: bool = False
) -> list[dict[str, Any]]:
    """Messages in the given order, each cut to what the viewer may see; hidden ones left out."""
    seen = visibility.levels(conn, viewer.id, message_ids)
    shown = [m for m in message_ids if seen.get(m) is not None][:limit]
    if not shown:
        return []
    marks = ",".join("?" * len(shown))
    rows = {
        r[0]: r
        for r in conn.execute(
            f"""SELECT id, date, subject, from_address, from_name, main_text, full_text, html
                FROM messages WHERE id IN ({marks})""",
            shown,
        )
    }
    people: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for mid, role, address, name, pid in conn.execute(
        f"""SELECT p.message_id, p.role, p.address, p.display_name, a.person_id FROM participants p
            LEFT JOIN addresses a ON a.address = p.address WHERE p.message_id IN ({marks})""",
        shown,
    ):
        people[mid][role].append({"address": address, "name": name, "person_id": pid})
    files: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for aid, mid, filename, content_type, size in conn.execute(
        f"SELECT id, message_id, filename, content_type, size FROM attachments WHERE message_id IN ({marks})", shown
    ):
        files[mid].append(
            {
                "id": aid,
                "message_id": mid,
                "filename": filename or f"attachment-{aid}",
                "content_type": content_type,
                "size": size,
            }
        )
    private = {
        r[0]
        for r in conn.execute(
            f"SELECT message_id FROM copies WHERE member_id = ? AND private = 1 AND message_id IN ({marks})",
            [viewer.id, *shown],
        )
    }
    result = []
    for mid in shown:
        if mid not in rows:
            continue
        _, date, subject, from_address, from_name, main, full, html = rows[mid]
        lv = seen[mid]
        roles = people[mid]
        item: dict[str, Any] = {
            "id": mid,
            "date": date,
            "level": "full" if lv == OWN else lv,
            "own": lv == OWN,
            "from": {"address": from_address, "name": from_name,
                     "person_id": next((p["person_id"] for p in roles.get("from", [])), None)},
            "to": roles.get("to", []),
            "cc": roles.get("cc", []),
            "bcc": roles.get("bcc", []) if lv == OWN else [],
            "subject": subject if at_least(lv, "subject") else None,
            "attachments": files.get(mid, []) if at_least(lv, "full") else [],
            "private": mid in private,
        }
        if at_least(lv, "full"):
            body = full or html_to_text(html or "")
            item["main_text"] = (main or body or "")[:2000] if not text else (main or body or "")
            if text:
                item["text"] = body
        result.append(item)
    return result


def members(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Team members (for filters and settings)."""
    return [
        {"id": i, "login": login, "name": name, "sharing": level}
        for i, login, name, level in conn.execute(
            "SELECT id, login, name, coalesce(sharing_override, sharing) FROM members WHERE in_config = 1 ORDER BY name"
        )
    ]


def settings_of(conn: sqlite3.Connection, viewer: Viewer) -> dict[str, Any]:
    """What the settings page shows the viewer: their level, exceptions, private marks, exclusions."""
    level = conn.execute(
        "SELECT coalesce(sharing_override, sharing) FROM members WHERE id = ?", (viewer.id,)
    ).fetchone()[0]
    exceptions = {
        login: lv
        for login, lv in conn.execute(
            "SELECT m.login, e.level FROM sharing_exceptions e JOIN members m ON m.id = e.viewer_id"
            " WHERE e.member_id = ? ORDER BY m.login",
            (viewer.id,),
        )
    }
    private_people = [
        {"id": pid, "name": name}
        for pid, name in conn.execute(
            "SELECT p.id, p.name FROM private_people pp JOIN people p ON p.id = pp.person_id"
            " WHERE pp.member_id = ? ORDER BY p.name",
            (viewer.id,),
        )
    ]
    private_messages = [
        {"id": mid, "subject": subject, "date": date}
        for mid, subject, date in conn.execute(
            "SELECT m.id, m.subject, m.date FROM copies c JOIN messages m ON m.id = c.message_id"
            " WHERE c.member_id = ? AND c.private = 1 ORDER BY m.date DESC",
            (viewer.id,),
        )
    ]
    exclusions = [r[0] for r in conn.execute("SELECT pattern FROM exclusions ORDER BY pattern")]
    return {
        "sharing": level,
        "exceptions": exceptions,
        "private_people": private_people,
        "private_messages": private_messages,
        "exclusions": exclusions,
    }


__all__ = ["DEGREES", "SORTS", "Views", "changed", "fts_query", "members", "message_summaries", "settings_of"]
