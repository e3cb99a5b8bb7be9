"""Enrichment in the database: every value with its provenance, and the overrides that win.

Theory of operation. `record()` runs in the writer, once per new message from a person, and
upserts what `enrichment.extract()` found into `person_facts` / `company_facts`: one row per
(entity, field, value) holding the newest message that stated it, its date, how often it was
stated and the best confidence. The effective values the rest of relayproxy reads — the
`people.job_title/phones/links` and `companies.name/description/website/logo` columns — are
then recomputed for the touched entities by `refresh_person()` / `refresh_company()`:

- an override (`overrides`, set on the person or company page) always wins, and lives in its
  own table, so enrichment running again never touches it;
- else the most recent confident value (a signature's job title changes when they are promoted);
- phones and links are lists: every value stated, newest first.

Those columns hold what a viewer who may read all the mail sees. The facts come from mail text,
so a viewer who may not read some of it gets `effective()` over the facts from the messages they
may read (graph/views.py asks graph/visibility.py which those are); overrides show to everyone.

Merging two people folds the other's facts and overrides into the kept person (`merge_people`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from relayproxy.graph import visibility
from relayproxy.graph.companies import company_name
from relayproxy.graph.enrichment import (
    Card,
    Findings,
    choose_company_name,
    choose_display_name,
    matches_domain,
    normalise_phone,
    profile_link,
    website_link,
)
from relayproxy.graph.identity import clean_display_name

PERSON_FIELDS = ("name", "job_title", "phones", "links")
COMPANY_FIELDS = ("name", "description", "website")
_MIN_TITLE_CONFIDENCE = 0.5
_MAX_PHONES = 5
_MAX_LINKS = 8

# One fact behind a person's effective values: (field, value, id of the newest message stating it).
Fact = tuple[str, str, int | None]
Enriched = tuple[str | None, list[str], list[str]]  # job title, phones, links


class OverrideError(ValueError):
    """An override that cannot be stored; the message says what to correct."""


# --- recording ---------------------------------------------------------------------------


def _person_fact(
    conn: sqlite3.Connection, person_id: int, field: str, value: str, source: str, confidence: float,
    message_id: int, at: str,
) -> None:
    conn.execute(
        """INSERT INTO person_facts (person_id, field, value, source, confidence, message_id, seen_at, first_seen)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (person_id, field, value) DO UPDATE SET
             times = times + 1,
             confidence = max(confidence, excluded.confidence),
             source = CASE WHEN excluded.seen_at >= seen_at THEN excluded.source ELSE source END,
             message_id = CASE WHEN excluded.seen_at >= seen_at THEN excluded.message_id ELSE message_id END,
             seen_at = max(seen_at, excluded.seen_at),
             first_seen = min(first_seen, excluded.first_seen)""",
        (person_id, field, value, source, confidence, message_id, at, at),
    )


def _company_fact(
    conn: sqlite3.Connection, company_id: int, field: str, value: str, source: str, confidence: float,
    message_id: int | None, at: str,
) -> None:
    conn.execute(
        """INSERT INTO company_facts (company_id, field, value, source, confidence, message_id, seen_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (company_id, field, value) DO UPDATE SET
             times = times + 1,
             confidence = max(confidence, excluded.confidence),
             source = CASE WHEN excluded.seen_at >= seen_at THEN excluded.source ELSE source END,
             message_id = CASE WHEN excluded.seen_at >= seen_at THEN excluded.message_id ELSE message_id END,
             seen_at = max(seen_at, excluded.seen_at)""",
        (company_id, field, value, source, confidence, message_id, at),
    )


def _company_of(conn: sqlite3.Connection, person_id: int) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT c.id, c.domain FROM people p JOIN companies c ON c.id = p.company_id WHERE p.id = ?", (person_id,)
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


class Dirty:
    """People and companies whose effective values need recomputing once, at the end of a batch."""

    def __init__(self) -> None:
        self.people: set[int] = set()
        self.companies: set[int] = set()

    def refresh(self, conn: sqlite3.Connection) -> None:
        for person_id in sorted(self.people):
            refresh_person(conn, person_id)
        for company_id in sorted(self.companies):
            refresh_company(conn, company_id)
        self.people.clear()
        self.companies.clear()


def record(
    conn: sqlite3.Connection, *, person_id: int, address: str, display_name: str, findings: Findings | None,
    message_id: int, at: str, dirty: Dirty | None = None,
) -> None:
    """Store what one new message from `person_id` says (writer thread, in its transaction).

    With `dirty`, the recomputation of effective values is left to `dirty.refresh()` at the end
    of the batch, once per person and company however many of their messages it holds.
    """
    later = dirty if dirty is not None else Dirty()
    _record(conn, person_id, address, display_name, findings, message_id, at, later)
    if dirty is None:
        later.refresh(conn)


def _record(
    conn: sqlite3.Connection, person_id: int, address: str, display_name: str, findings: Findings | None,
    message_id: int, at: str, dirty: Dirty,
) -> None:
    touched = _record_name(conn, person_id, address, display_name, at)
    if findings is None:
        if touched:
            dirty.people.add(person_id)
        return
    company = _company_of(conn, person_id)
    facts = findings.signature
    if facts is not None:
        if facts.job_title:
            _person_fact(conn, person_id, "job_title", facts.job_title, "signature", facts.title_confidence,
                         message_id, at)
        for phone in facts.phones:
            _person_fact(conn, person_id, "phone", phone, "signature", 0.9, message_id, at)
        for link in facts.links:
            _person_fact(conn, person_id, "link", link, "signature", 0.8, message_id, at)
        if facts.company:
            _person_fact(conn, person_id, "company", facts.company, "signature", facts.company_confidence,
                         message_id, at)
            if company is not None:
                _company_fact(conn, company[0], "name", facts.company, "signature", facts.company_confidence,
                              message_id, at)
        if facts.website and company is not None:
            _company_fact(conn, company[0], "website", facts.website, "signature", 0.8, message_id, at)
    if findings.organization and company is not None:
        confidence = 0.9 if matches_domain(findings.organization, company[1]) else 0.8
        _company_fact(conn, company[0], "name", findings.organization, "organization", confidence, message_id, at)
    people = {person_id}
    for card in findings.cards:
        people.update(_record_card(conn, card, person_id, display_name, message_id, at))
    dirty.people.update(people)
    if company is not None:
        dirty.companies.add(company[0])


def _record_name(conn: sqlite3.Connection, person_id: int, address: str, display_name: str, at: str) -> bool:
    """Count the display name the sender used; True when it may change the person's name."""
    name = clean_display_name(display_name, address)
    if not name:
        return False
    conn.execute(
        """INSERT INTO display_names (address, name, last_at) VALUES (?, ?, ?)
           ON CONFLICT (address, name) DO UPDATE SET times = times + 1, last_at = max(last_at, excluded.last_at)""",
        (address, name, at),
    )
    row = conn.execute("SELECT name, name_from_display FROM people WHERE id = ?", (person_id,)).fetchone()
    return row is not None and row[1] <= 2 and row[0] != name


def _record_card(
    conn: sqlite3.Connection, card: Card, sender_id: int, sender_name: str, message_id: int, at: str
) -> set[int]:
    """A vCard fills the people its addresses belong to, or the sender when it names them."""
    marks = ",".join("?" * len(card.emails))
    people = {
        int(r[0])
        for r in conn.execute(f"SELECT DISTINCT person_id FROM addresses WHERE address IN ({marks})", card.emails)
    } if card.emails else set()
    if not people and card.name and sender_name and card.name.casefold() == " ".join(sender_name.split()).casefold():
        people = {sender_id}
    for pid in people:
        if card.job_title:
            _person_fact(conn, pid, "job_title", card.job_title, "vcard", 0.95, message_id, at)
        for phone in card.phones:
            _person_fact(conn, pid, "phone", phone, "vcard", 0.95, message_id, at)
        for link in card.links:
            _person_fact(conn, pid, "link", link, "vcard", 0.9, message_id, at)
        if card.company:
            _person_fact(conn, pid, "company", card.company, "vcard", 0.9, message_id, at)
    return people


# --- effective values --------------------------------------------------------------------


def _overrides(conn: sqlite3.Connection, kind: str, entity_id: int) -> dict[str, Any]:
    return overrides_of(conn, kind, [entity_id]).get(entity_id, {})


def person_facts(conn: sqlite3.Connection, person_ids: Iterable[int] | None = None) -> dict[int, list[Fact]]:
    """The confident job titles, phones and links found for each person (all, or `person_ids`),
    newest first, with the message that stated each: what `effective` chooses from."""
    where = ""
    params: list[Any] = [_MIN_TITLE_CONFIDENCE]
    if person_ids is not None:
        where = " AND person_id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(sorted(person_ids)))
    facts: dict[int, list[Fact]] = {}
    for person_id, field, value, message_id in conn.execute(
        f"""SELECT person_id, field, value, message_id FROM person_facts
            WHERE field IN ('job_title', 'phone', 'link') AND (field != 'job_title' OR confidence >= ?){where}
            ORDER BY person_id, seen_at DESC, confidence DESC, times DESC""",
        params,
    ):
        facts.setdefault(int(person_id), []).append((field, value, message_id))
    return facts


def overrides_of(
    conn: sqlite3.Connection, kind: str, entity_ids: Iterable[int] | None = None
) -> dict[int, dict[str, Any]]:
    """The corrected fields of each person or company (`kind`; all, or `entity_ids`) that has any."""
    where, params = "", [kind]
    if entity_ids is not None:
        where = " AND entity_id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(sorted(entity_ids)))
    found: dict[int, dict[str, Any]] = {}
    for entity_id, field, value in conn.execute(
        f"SELECT entity_id, field, value FROM overrides WHERE kind = ?{where}", params
    ):
        found.setdefault(int(entity_id), {})[field] = json.loads(value)
    return found


def effective(facts: Iterable[Fact], overrides: Mapping[str, Any]) -> Enriched:
    """A person's job title, phones and links: an override wins, else the newest confident facts."""
    found: dict[str, list[str]] = {}
    for field, value, _ in facts:
        found.setdefault(field, []).append(value)
    title = overrides["job_title"] if "job_title" in overrides else next(iter(found.get("job_title", [])), None)
    phones = overrides["phones"] if "phones" in overrides else found.get("phone", [])[:_MAX_PHONES]
    links = overrides["links"] if "links" in overrides else found.get("link", [])[:_MAX_LINKS]
    return title, phones, links


def refresh_person(conn: sqlite3.Connection, person_id: int) -> None:
    """Recompute a person's effective name, job title, phones and links (overrides win)."""
    overrides = _overrides(conn, "person", person_id)
    title, phones, links = effective(person_facts(conn, [person_id]).get(person_id, []), overrides)
    conn.execute(
        "UPDATE people SET job_title = ?, phones = ?, links = ? WHERE id = ?",
        (title, json.dumps(phones), json.dumps(links), person_id),
    )
    if "name" in overrides:
        conn.execute("UPDATE people SET name = ?, name_from_display = 3 WHERE id = ?", (overrides["name"], person_id))
        return
    rank = conn.execute("SELECT name_from_display FROM people WHERE id = ?", (person_id,)).fetchone()
    if rank is None or rank[0] != 2:
        return  # only the names people give themselves are chosen among
    chosen = choose_display_name(
        conn.execute(
            "SELECT d.name, d.times, d.last_at FROM display_names d JOIN addresses a ON a.address = d.address"
            " WHERE a.person_id = ?",
            (person_id,),
        )
    )
    if chosen:
        conn.execute("UPDATE people SET name = ? WHERE id = ? AND name != ?", (chosen, person_id, chosen))


def refresh_company(conn: sqlite3.Connection, company_id: int) -> None:
    """Recompute a company's effective name, description, website and logo (overrides win)."""
    row = conn.execute("SELECT domain FROM companies WHERE id = ?", (company_id,)).fetchone()
    if row is None:
        return
    domain = str(row[0])
    overrides = _overrides(conn, "company", company_id)
    names = [
        (str(v), float(c), int(t))
        for v, c, t in conn.execute(
            "SELECT value, confidence, times FROM company_facts WHERE company_id = ? AND field = 'name'", (company_id,)
        )
    ]
    websites = [
        str(r[0])
        for r in conn.execute(
            "SELECT value FROM company_facts WHERE company_id = ? AND field = 'website'"
            " ORDER BY times DESC, seen_at DESC",
            (company_id,),
        )
    ]
    site = conn.execute(
        "SELECT url, description, logo, title FROM websites WHERE domain = ? AND status = 'ok'", (domain,)
    ).fetchone()
    name = overrides.get("name") or choose_company_name(domain, names)
    description = overrides["description"] if "description" in overrides else (site[1] if site else None)
    found_site = websites[0] if websites else (site[0] if site else None)
    website = overrides["website"] if "website" in overrides else found_site
    logo = site[2] if site else None
    conn.execute(
        "UPDATE companies SET name = ?, description = ?, website = ?, logo = ? WHERE id = ?",
        (name, description, website, logo, company_id),
    )


# --- overrides ---------------------------------------------------------------------------


def _clean_override(kind: str, field: str, value: Any) -> Any:
    """Validate an override value; lists for phones and links, a string otherwise."""
    fields = PERSON_FIELDS if kind == "person" else COMPANY_FIELDS
    if field not in fields:
        raise OverrideError(f"{field!r} cannot be corrected; choose one of {', '.join(fields)}.")
    if field == "phones":
        items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
        phones = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            phone = normalise_phone(item, "US")
            if phone is None:
                raise OverrideError(
                    f"{item!r} is not a phone number; write it with its country code, like +1 415 555 0132."
                )
            phones.append(phone)
        return list(dict.fromkeys(phones))
    if field == "links":
        items = value if isinstance(value, list) else str(value).replace(",", " ").split()
        links = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            link = profile_link(item) or website_link(item)
            if link is None:
                raise OverrideError(f"{item!r} is not a web address.")
            links.append(link)
        return list(dict.fromkeys(links))
    text = " ".join(str(value).split())
    if field == "website" and text:
        site = website_link(text)
        if site is None:
            raise OverrideError(f"{text!r} is not a web address.")
        return site
    if field == "name" and not text:
        raise OverrideError("A name cannot be empty; clear the correction instead.")
    return text[:500] or None


def set_override(
    conn: sqlite3.Connection, kind: str, entity_id: int, field: str, value: Any, *, member_id: int | None, now: str
) -> None:
    """Correct one enriched field of a person or company; it wins over enrichment from now on."""
    if kind not in ("person", "company"):
        raise OverrideError("Only people and companies can be corrected.")
    table = "people" if kind == "person" else "companies"
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (entity_id,)).fetchone() is None:
        raise OverrideError(f"No such {kind}.")
    cleaned = _clean_override(kind, field, value)
    conn.execute(
        """INSERT INTO overrides (kind, entity_id, field, value, member_id, set_at) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (kind, entity_id, field) DO UPDATE SET value = excluded.value,
             member_id = excluded.member_id, set_at = excluded.set_at""",
        (kind, entity_id, field, json.dumps(cleaned), member_id, now),
    )
    _refresh(conn, kind, entity_id)


def clear_override(conn: sqlite3.Connection, kind: str, entity_id: int, field: str) -> None:
    """Drop a correction: the field goes back to what enrichment found."""
    conn.execute("DELETE FROM overrides WHERE kind = ? AND entity_id = ? AND field = ?", (kind, entity_id, field))
    if kind == "person" and field == "name":
        # Back to the best name the mail gives: their own display name, else the guessed one.
        conn.execute("UPDATE people SET name_from_display = 2 WHERE id = ?", (entity_id,))
        if conn.execute(
            "SELECT 1 FROM display_names d JOIN addresses a ON a.address = d.address WHERE a.person_id = ?",
            (entity_id,),
        ).fetchone() is None:
            conn.execute("UPDATE people SET name_from_display = 1 WHERE id = ?", (entity_id,))
    _refresh(conn, kind, entity_id)


def _refresh(conn: sqlite3.Connection, kind: str, entity_id: int) -> None:
    from relayproxy.graph import views
    from relayproxy.graph.ingest import invalidate_caches

    if kind == "person":
        refresh_person(conn, entity_id)
    else:
        refresh_company(conn, entity_id)
    invalidate_caches()  # ingest caches name ranks
    views.changed()


# --- merging -----------------------------------------------------------------------------


def merge_people(conn: sqlite3.Connection, keep: int, other: int) -> None:
    """Fold `other`'s enrichment into `keep` (before `other` is deleted): facts combine, the kept
    person's overrides win, the other's fill fields the kept one had not corrected."""
    conn.execute(
        """INSERT INTO person_facts
             (person_id, field, value, source, confidence, message_id, seen_at, first_seen, times)
           SELECT ?, field, value, source, confidence, message_id, seen_at, first_seen, times
           FROM person_facts WHERE person_id = ? AND true
           ON CONFLICT (person_id, field, value) DO UPDATE SET
             times = times + excluded.times,
             confidence = max(confidence, excluded.confidence),
             source = CASE WHEN excluded.seen_at > seen_at THEN excluded.source ELSE source END,
             message_id = CASE WHEN excluded.seen_at > seen_at THEN excluded.message_id ELSE message_id END,
             seen_at = max(seen_at, excluded.seen_at),
             first_seen = min(first_seen, excluded.first_seen)""",
        (keep, other),
    )
    conn.execute("DELETE FROM person_facts WHERE person_id = ?", (other,))
    conn.execute(
        """INSERT OR IGNORE INTO overrides (kind, entity_id, field, value, member_id, set_at)
           SELECT kind, ?, field, value, member_id, set_at FROM overrides WHERE kind = 'person' AND entity_id = ?""",
        (keep, other),
    )
    conn.execute("DELETE FROM overrides WHERE kind = 'person' AND entity_id = ?", (other,))
    refresh_person(conn, keep)


# --- reading -----------------------------------------------------------------------------


def _provenance(rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {"value": v, "source": s, "confidence": round(float(c), 2), "message_id": m, "seen_at": at, "times": t}
        for v, s, c, m, at, t in rows
    ]


def _override_details(conn: sqlite3.Connection, kind: str, entity_id: int) -> dict[str, dict[str, Any]]:
    """The corrections people made to one person or company: value, who, when."""
    return {
        f: {"value": json.loads(v), "member": login, "set_at": at}
        for f, v, login, at in conn.execute(
            "SELECT o.field, o.value, m.login, o.set_at FROM overrides o LEFT JOIN members m ON m.id = o.member_id"
            " WHERE o.kind = ? AND o.entity_id = ?",
            (kind, entity_id),
        )
    }


def person_details(conn: sqlite3.Connection, person_id: int, viewer_id: int | None = None) -> dict[str, Any]:
    """A person's enriched fields with provenance: the value shown, whether a person corrected
    it, and every value enrichment found (newest first) with its message, date and confidence.

    For a `viewer_id`, values found in mail that viewer may not read are left out, and the values
    shown are chosen without them.
    """
    row = conn.execute("SELECT name, job_title, phones, links FROM people WHERE id = ?", (person_id,)).fetchone()
    if row is None:
        return {}
    overrides = _override_details(conn, "person", person_id)
    rows = conn.execute(
        "SELECT field, value, source, confidence, message_id, seen_at, times FROM person_facts WHERE person_id = ?"
        " ORDER BY seen_at DESC, confidence DESC",
        (person_id,),
    ).fetchall()
    readable = None if viewer_id is None else visibility.readable(conn, viewer_id, {r[4] for r in rows})
    found: dict[str, list[tuple[Any, ...]]] = {}
    for field, *rest in rows:
        if readable is None or rest[3] in readable:
            found.setdefault(field, []).append(tuple(rest))
    values = {"name": row[0], "job_title": row[1], "phones": json.loads(row[2]), "links": json.loads(row[3])}
    if readable is not None:
        facts = person_facts(conn, [person_id]).get(person_id, [])
        corrected = {field: o["value"] for field, o in overrides.items()}
        chosen = effective([f for f in facts if f[2] in readable], corrected)
        values.update(zip(("job_title", "phones", "links"), chosen, strict=True))
    source_of = {"name": None, "job_title": "job_title", "phones": "phone", "links": "link"}
    details: dict[str, Any] = {}
    for field in PERSON_FIELDS:
        fact = source_of[field]
        details[field] = {
            "value": values[field],
            "override": overrides.get(field),
            "found": _provenance(found.get(fact, [])) if fact else [],
        }
    details["company_as_written"] = _provenance(found.get("company", []))
    return details


def company_details(conn: sqlite3.Connection, company_id: int) -> dict[str, Any]:
    """A company's enriched fields with provenance (see `person_details`), and its website fetch."""
    row = conn.execute(
        "SELECT name, description, website, logo, domain FROM companies WHERE id = ?", (company_id,)
    ).fetchone()
    if row is None:
        return {}
    overrides = _override_details(conn, "company", company_id)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for field, *rest in conn.execute(
        "SELECT field, value, source, confidence, message_id, seen_at, times FROM company_facts"
        " WHERE company_id = ? ORDER BY times DESC, seen_at DESC",
        (company_id,),
    ):
        found.setdefault(field, []).append(tuple(rest))
    site = conn.execute(
        "SELECT url, status, error, title, description, logo, fetched_at FROM websites WHERE domain = ?", (row[4],)
    ).fetchone()
    values = {"name": row[0], "description": row[1], "website": row[2]}
    details: dict[str, Any] = {
        field: {"value": values[field], "override": overrides.get(field), "found": _provenance(found.get(field, []))}
        for field in COMPANY_FIELDS
    }
    details["name"]["from_domain"] = company_name(row[4])
    details["logo"] = row[3]
    details["website_fetch"] = (
        dict(zip(("url", "status", "error", "title", "description", "logo", "fetched_at"), site, strict=True))
        if site
        else None
    )
    return details
