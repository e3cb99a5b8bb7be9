"""Ingest: one message, as one member saw it, into the graph — idempotently.

Every path into the graph (SMTP and IMAP capture, history sync, file import) ends here.
Work is split in two so the single writer stays fast:

- `prepare` (any thread): parse the bytes, store attachments by hash, find the main text.
- `Ingestor.ingest` (the writer thread, inside its transaction): find or insert the message
  by key, record the member's copy, and for each correspondent the person, their company and
  one interaction; per-member stats change only when an interaction is new.

Direction comes from the team, not from who captured it: a message from a member's address
is that member's outbound mail to each external recipient (the SMTP envelope when known, so
Bcc counts and refused recipients do not); any other message is inbound from its sender to
the capturing member and to every member it was addressed to. Co-recipients of inbound mail
become people without interactions: the message was not between them and the team.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from relayproxy.config import Member
from relayproxy.graph import enrich_store
from relayproxy.graph.blobs import BlobStore
from relayproxy.graph.companies import company_domain, company_name
from relayproxy.graph.enrichment import findings_for
from relayproxy.graph.identity import (
    Team,
    clean_display_name,
    is_automated_address,
    is_automated_message,
    name_from_local_part,
)
from relayproxy.graph.mail import Address, ParsedMail, parse, parse_headers
from relayproxy.graph.text import main_text

_EARLIEST = datetime(1980, 1, 1, tzinfo=UTC)
_generation = 0  # bumped by anything that changes people or exclusions outside ingest


def invalidate_caches() -> None:
    """Tell every Ingestor that people, companies or exclusions changed under it."""
    global _generation
    _generation += 1


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second (how dates are stored)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare(raw: bytes, blobs: BlobStore | None, *, headers_only: bool = False) -> ParsedMail:
    """Parse `raw` and store its attachments; raises UnparsableMail for non-mail."""
    mail = parse_headers(raw) if headers_only else parse(raw)
    if mail.has_body:
        mail.enrichment = findings_for(mail)  # enrichment (issue 8): off the writer, before bytes go
        store_attachments(mail, blobs)
        mail.main_text = main_text(mail.text)
    return mail


def store_attachments(mail: ParsedMail, blobs: BlobStore | None) -> None:
    """Write attachments to the blob store and drop their bytes from memory."""
    for attachment in mail.attachments:
        if blobs is not None and attachment.content:
            attachment.sha256 = blobs.put(attachment.content)
        attachment.content = b""


@dataclass(frozen=True, slots=True)
class Seen:
    """How a message reached the graph."""

    member: str | None  # the capturing member's login; None for none
    source: str
    captured_at: datetime
    recipients: tuple[str, ...] | None = None  # SMTP envelope recipients the upstream accepted


@dataclass(frozen=True, slots=True)
class Ingested:
    message_id: int
    new: bool  # the message was not in the graph before
    completed: bool = False  # a header-only message got its body


def sync_members(conn: sqlite3.Connection, members: Iterable[Member]) -> None:
    """Make the members table match the config; settings changed on the site are kept."""
    listed = list(members)
    conn.execute("UPDATE members SET in_config = 0")
    for member in listed:
        conn.execute(
            """INSERT INTO members (login, name, sharing, in_config) VALUES (?, ?, ?, 1)
               ON CONFLICT (login) DO UPDATE SET name = excluded.name,
               sharing = excluded.sharing, in_config = 1""",
            (member.login, member.name, member.sharing),
        )
    conn.execute("DELETE FROM member_addresses")
    for member in listed:
        (member_id,) = conn.execute("SELECT id FROM members WHERE login = ?", (member.login,)).fetchone()
        conn.executemany(
            "INSERT OR REPLACE INTO member_addresses (address, member_id) VALUES (?, ?)",
            [(a, member_id) for a in member.addresses],
        )
    invalidate_caches()


def load_team(conn: sqlite3.Connection, domains: Sequence[str]) -> Team:
    """The Team rules as the database knows them: member addresses and exclusions."""
    owners: dict[str, list[str]] = {}
    for login, address in conn.execute(
        "SELECT m.login, a.address FROM member_addresses a JOIN members m ON m.id = a.member_id"
    ):
        owners.setdefault(login, []).append(address)
    for (login,) in conn.execute("SELECT login FROM members WHERE in_config = 1"):
        owners.setdefault(login, [])
    excluded = [row[0] for row in conn.execute("SELECT pattern FROM exclusions")]
    return Team.build(domains, owners.items(), excluded)


class Ingestor:
    """Ingest into one database; caches lookups between calls (writer thread only)."""

    def __init__(self, team_domains: Sequence[str]) -> None:
        self.team_domains = tuple(team_domains)
        self._generation = -1
        self._team = Team()
        self._people: dict[str, tuple[int, int]] = {}  # address → (person id, name rank)
        self._dirty = enrich_store.Dirty()
        self._companies: dict[str, int] = {}
        self._members: dict[str, int] = {}

    def _refresh(self, conn: sqlite3.Connection) -> None:
        if self._generation == _generation:
            return
        self._generation = _generation
        self._team = load_team(conn, self.team_domains)
        self._people.clear()
        self._companies.clear()
        self._members.clear()

    def team(self, conn: sqlite3.Connection) -> Team:
        self._refresh(conn)
        return self._team

    # --- lookups -----------------------------------------------------------------------

    def member_id(self, conn: sqlite3.Connection, login: str) -> int:
        found = self._members.get(login)
        if found is None:
            row = conn.execute("SELECT id FROM members WHERE login = ?", (login,)).fetchone()
            if row is None:  # a login that is not in the config (capture.unknown_logins)
                cursor = conn.execute(
                    "INSERT INTO members (login, name, in_config) VALUES (?, ?, 0)", (login, login)
                )
                row = (cursor.lastrowid,)
            found = self._members[login] = int(row[0])
        return found

    def company_id(self, conn: sqlite3.Connection, domain: str, now: str) -> int | None:
        registrable = company_domain(domain, self.team_domains)
        if registrable is None:
            return None
        found = self._companies.get(registrable)
        if found is not None:
            return found
        row = conn.execute("SELECT company_id FROM company_domains WHERE domain = ?", (registrable,)).fetchone()
        if row is None:
            cursor = conn.execute(
                "INSERT INTO companies (name, domain, created_at) VALUES (?, ?, ?)",
                (company_name(registrable), registrable, now),
            )
            row = (cursor.lastrowid,)
            conn.execute("INSERT INTO company_domains (domain, company_id) VALUES (?, ?)", (registrable, row[0]))
        found = self._companies[registrable] = int(row[0])
        return found

    def person_id(self, conn: sqlite3.Connection, who: Address, now: str, *, sender: bool = False) -> int:
        """The person for an address, created on first sight; better names replace guessed ones.

        Name ranks: 0 guessed from the local part, 1 a display name others used for them,
        2 the display name on their own mail (how people name themselves wins).
        """
        address = who.address
        display = clean_display_name(who.name, address)
        rank = (2 if sender else 1) if display else 0
        cached = self._people.get(address)
        if cached is None:
            row = conn.execute(
                "SELECT a.person_id, p.name_from_display FROM addresses a JOIN people p ON p.id = a.person_id"
                " WHERE a.address = ?",
                (address,),
            ).fetchone()
            if row is None:
                company = self.company_id(conn, address.rpartition("@")[2], now)
                cursor = conn.execute(
                    "INSERT INTO people (name, name_from_display, company_id, created_at) VALUES (?, ?, ?, ?)",
                    (display or name_from_local_part(address), rank, company, now),
                )
                person = int(cursor.lastrowid or 0)
                conn.execute(
                    "INSERT INTO addresses (address, person_id, display_name) VALUES (?, ?, ?)",
                    (address, person, display or None),
                )
                cached = self._people[address] = (person, rank)
            else:
                cached = self._people[address] = (int(row[0]), int(row[1]))
        person, known_rank = cached
        if rank > known_rank:
            conn.execute("UPDATE people SET name = ?, name_from_display = ? WHERE id = ?", (display, rank, person))
            conn.execute("UPDATE addresses SET display_name = ? WHERE address = ?", (display, address))
            self._people[address] = (person, rank)
        return person

    # --- the message -------------------------------------------------------------------

    def ingest(self, conn: sqlite3.Connection, mail: ParsedMail, seen: Seen) -> Ingested:
        """Add `mail` as seen by `seen.member` to the graph (writer thread, in a transaction)."""
        self._refresh(conn)
        now = iso(seen.captured_at)
        date = mail.date
        if date is None or date < _EARLIEST or date > seen.captured_at + timedelta(days=1):
            date = seen.captured_at  # RFC 5322 §3.6.1 makes Date mandatory; absurd ones happen
        at = iso(date)
        automated = is_automated_message(mail.headers) or (
            mail.sender is not None and is_automated_address(mail.sender.address)
        )
        message_id, new, completed = self._message(conn, mail, at, automated, now)
        self._participants(conn, message_id, mail, seen.recipients)
        member_id = self.member_id(conn, seen.member) if seen.member else None
        if member_id is not None:
            conn.execute(
                "INSERT OR IGNORE INTO copies (message_id, member_id, source, captured_at) VALUES (?, ?, ?, ?)",
                (message_id, member_id, seen.source, now),
            )
        if not automated:
            self._interactions(conn, message_id, mail, seen, at, now)
            if (new or completed) and mail.has_body:
                self._enrich(conn, mail, message_id, at, now)
        return Ingested(message_id, new, completed)

    def _enrich(self, conn: sqlite3.Connection, mail: ParsedMail, message_id: int, at: str, now: str) -> None:
        """Enrichment (issue 8): store what a person's own mail says about them, found in prepare."""
        sender = mail.sender
        if sender is None or not self._team.makes_person(sender.address):
            return
        person = self.person_id(conn, sender, now, sender=True)
        enrich_store.record(
            conn, person_id=person, address=sender.address, display_name=sender.name,
            findings=mail.enrichment, message_id=message_id, at=at, dirty=self._dirty,
        )

    def finish(self, conn: sqlite3.Connection) -> None:
        """End of a batch: recompute what the batch's messages changed (once per person)."""
        self._dirty.refresh(conn)

    def _message(
        self, conn: sqlite3.Connection, mail: ParsedMail, at: str, automated: bool, now: str
    ) -> tuple[int, bool, bool]:
        row = conn.execute("SELECT id, has_body FROM messages WHERE key = ?", (mail.key,)).fetchone()
        sender = mail.sender
        if row is None:
            cursor = conn.execute(
                """INSERT INTO messages (key, message_id, subject, date, from_address, from_name,
                   automated, has_body, main_text, full_text, html, size, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    mail.key, mail.message_id, mail.subject, at,
                    sender.address if sender else None, sender.name if sender else None,
                    int(automated), int(mail.has_body), mail.main_text or None,
                    mail.text or None, mail.html or None, mail.size, now,
                ),
            )
            message_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO message_text (rowid, subject, full_text) VALUES (?, ?, ?)",
                (message_id, mail.subject, mail.text),
            )
            self._attachments(conn, message_id, mail)
            return message_id, True, False
        message_id, had_body = int(row[0]), bool(row[1])
        if had_body or not mail.has_body:
            return message_id, False, False
        # A fuller copy completes the stored one (the headers were seen first).
        old_subject, old_text = conn.execute(
            "SELECT subject, coalesce(full_text, '') FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO message_text (message_text, rowid, subject, full_text) VALUES ('delete', ?, ?, ?)",
            (message_id, old_subject, old_text),
        )
        conn.execute(
            "UPDATE messages SET has_body = 1, main_text = ?, full_text = ?, html = ?, size = ? WHERE id = ?",
            (mail.main_text or None, mail.text or None, mail.html or None, mail.size, message_id),
        )
        conn.execute(
            "INSERT INTO message_text (rowid, subject, full_text) VALUES (?, ?, ?)",
            (message_id, old_subject, mail.text),
        )
        self._attachments(conn, message_id, mail)
        return message_id, False, True

    @staticmethod
    def _attachments(conn: sqlite3.Connection, message_id: int, mail: ParsedMail) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO attachments (message_id, sha256, filename, content_type, size)"
            " VALUES (?, ?, ?, ?, ?)",
            [(message_id, a.sha256, a.filename, a.content_type, a.size) for a in mail.attachments if a.sha256],
        )

    @staticmethod
    def _participants(
        conn: sqlite3.Connection, message_id: int, mail: ParsedMail, envelope: tuple[str, ...] | None
    ) -> None:
        rows = [(message_id, "from", mail.sender.address, mail.sender.name or None)] if mail.sender else []
        for role, group in (("to", mail.to), ("cc", mail.cc), ("bcc", mail.bcc)):
            rows.extend((message_id, role, a.address, a.name or None) for a in group)
        if envelope is not None:
            rows.extend((message_id, "rcpt", a.lower(), None) for a in envelope)
        conn.executemany(
            "INSERT OR IGNORE INTO participants (message_id, role, address, display_name) VALUES (?, ?, ?, ?)",
            rows,
        )

    def _interactions(
        self, conn: sqlite3.Connection, message_id: int, mail: ParsedMail, seen: Seen, at: str, now: str
    ) -> None:
        team = self._team
        sender = mail.sender
        addressed = mail.to + mail.cc + mail.bcc
        if sender is not None and team.is_team_address(sender.address):
            owner = team.member_for(sender.address) or seen.member
            if owner is None:
                return
            recipients = self._outbound_recipients(conn, message_id, addressed, seen.recipients)
            count = max(1, len(recipients))
            owner_id = self.member_id(conn, owner)
            for who in recipients:
                if team.makes_person(who.address):
                    person = self.person_id(conn, who, now)
                    self._interaction(conn, owner_id, person, message_id, True, at, count)
            return
        receivers = {seen.member} if seen.member else set()
        receivers.update(m for m in (team.member_for(a.address) for a in addressed) if m)
        if sender is not None and team.makes_person(sender.address):
            person = self.person_id(conn, sender, now, sender=True)
            count = max(1, len(mail.to) + len(mail.cc))
            for login in sorted(receivers):
                self._interaction(conn, self.member_id(conn, login), person, message_id, False, at, count)
        for who in mail.to + mail.cc:
            if (sender is None or who.address != sender.address) and team.makes_person(who.address):
                self.person_id(conn, who, now)

    @staticmethod
    def _outbound_recipients(
        conn: sqlite3.Connection, message_id: int, addressed: list[Address], envelope: tuple[str, ...] | None
    ) -> list[Address]:
        """Who an outbound message went to: the envelope when known (now or from an earlier copy)."""
        if envelope is None:
            rows = conn.execute(
                "SELECT address FROM participants WHERE message_id = ? AND role = 'rcpt'", (message_id,)
            ).fetchall()
            if not rows:
                return addressed
            envelope = tuple(r[0] for r in rows)
        names = {a.address: a.name for a in addressed}
        unique = dict.fromkeys(a.lower() for a in envelope)
        return [Address(a, names.get(a, "")) for a in unique]

    @staticmethod
    def _interaction(
        conn: sqlite3.Connection, member_id: int, person_id: int, message_id: int, outbound: bool, at: str, count: int
    ) -> None:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO interactions (member_id, person_id, message_id, outbound, at, recipients)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (member_id, person_id, message_id, int(outbound), at, count),
        )
        if cursor.rowcount != 1:
            return  # seen before: counted once
        conn.execute(
            """INSERT INTO stats (member_id, person_id, first_at, last_at, sent, received, last_in, last_out)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (member_id, person_id) DO UPDATE SET
                 first_at = min(first_at, excluded.first_at),
                 last_at = max(last_at, excluded.last_at),
                 sent = sent + excluded.sent,
                 received = received + excluded.received,
                 last_in = CASE WHEN last_in IS NULL THEN excluded.last_in
                                WHEN excluded.last_in IS NULL THEN last_in
                                ELSE max(last_in, excluded.last_in) END,
                 last_out = CASE WHEN last_out IS NULL THEN excluded.last_out
                                 WHEN excluded.last_out IS NULL THEN last_out
                                 ELSE max(last_out, excluded.last_out) END""",
            (
                member_id, person_id, at, at, int(outbound), int(not outbound),
                None if outbound else at, at if outbound else None,
            ),
        )


def record_unparsable(
    conn: sqlite3.Connection, raw: bytes, error: str, *,
    member: str | None, source: str, origin: str | None, now: datetime,
) -> None:
    """Keep bytes that could not be read as mail, for inspection."""
    conn.execute(
        "INSERT INTO unparsable (member, source, origin, error, raw, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (member, source, origin, error[:500], raw, iso(now)),
    )
