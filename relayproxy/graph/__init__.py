"""The relationship graph: schema, ingest, rules, strength, queries. SQL lives here only.

`Graph` is the facade the rest of relayproxy uses: it owns the `Store` (one writer thread),
the attachment `BlobStore` and the `Ingestor`, and offers the few operations callers need.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import fast_mail_parser

from relayproxy.config import Settings
from relayproxy.graph import journal
from relayproxy.graph.blobs import BlobStore
from relayproxy.graph.enrichment import findings_for
from relayproxy.graph.identity import Team
from relayproxy.graph.ingest import (
    Ingested,
    Ingestor,
    Seen,
    prepare,
    record_unparsable,
    store_attachments,
    sync_members,
)
from relayproxy.graph.mail import ParsedMail, UnparsableMail, fill_from_fast, now_utc
from relayproxy.graph.store import Store, StoreError
from relayproxy.graph.text import main_text

__all__ = ["Graph", "Prepared", "Seen", "StoreError", "UnparsableMail"]


@dataclass(slots=True)
class Prepared:
    """A message ready for the writer: parsed, or the reason it could not be."""

    raw: bytes
    seen: Seen
    mail: ParsedMail | None
    error: str | None = None
    origin: str | None = None  # a file path or journal entry, for unparsable mail
    journal_id: int | None = None


def prepare_one(
    raw: bytes, seen: Seen, blobs: BlobStore | None, *, headers_only: bool = False, origin: str | None = None
) -> Prepared:
    """Parse one message for ingest, never raising for bad input."""
    try:
        return Prepared(raw, seen, prepare(raw, blobs, headers_only=headers_only), origin=origin)
    except UnparsableMail as exc:
        return Prepared(raw, seen, None, str(exc), origin)
    except Exception as exc:  # a parser bug must cost one message, not the session
        return Prepared(raw, seen, None, f"{type(exc).__name__}: {exc}", origin)


class Graph:
    """The graph database of one relayproxy installation."""

    def __init__(self, settings: Settings, *, durable: bool = True) -> None:
        self.settings = settings
        self.store = Store(settings.storage.database, durable=durable)
        self.blobs = BlobStore(settings.storage.blobs)
        self.ingestor = Ingestor(settings.team_domains)
        self._listeners: list[Callable[[list[int]], None]] = []
        self.store.write_sync(lambda conn: sync_members(conn, settings.members))

    def reload(self, settings: Settings) -> None:
        """Apply a re-read config (members added or removed, new defaults)."""
        self.settings = settings
        self.ingestor.team_domains = settings.team_domains
        self.store.write_sync(lambda conn: sync_members(conn, settings.members))

    def close(self) -> None:
        self.store.close()

    async def writable(self, timeout: float = 5.0) -> bool:
        """True when the writer commits a transaction within `timeout` seconds (for /healthz)."""
        try:
            await asyncio.wait_for(self.store.write(lambda conn: conn.execute("SELECT 1").fetchone()), timeout)
        except Exception:
            return False
        return True

    def subscribe(self, listener: Callable[[list[int]], None]) -> Callable[[], None]:
        """Call `listener(message_ids)` after each ingested batch; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def announce(self, results: Sequence[Ingested | None]) -> None:
        """Tell listeners (the web site's live updates) which messages just changed."""
        ids = [r.message_id for r in results if r is not None]
        for listener in list(self._listeners):
            try:
                listener(ids)
            except Exception:  # a listener's failure must not stop ingest
                pass

    # --- ingest ------------------------------------------------------------------------

    def write_prepared(self, conn: sqlite3.Connection, batch: Sequence[Prepared]) -> list[Ingested | None]:
        """Ingest a batch in the writer thread; unparsable mail is kept raw. Journal entries are dropped."""
        results: list[Ingested | None] = []
        for item in batch:
            if item.mail is None:
                record_unparsable(
                    conn, item.raw, item.error or "unparsable", member=item.seen.member,
                    source=item.seen.source, origin=item.origin, now=item.seen.captured_at,
                )
                results.append(None)
            else:
                results.append(self.ingestor.ingest(conn, item.mail, item.seen))
            if item.journal_id is not None:
                journal.drop(conn, item.journal_id)
        self.ingestor.finish(conn)
        return results

    def ingest_sync(self, batch: Sequence[Prepared]) -> list[Ingested | None]:
        """Ingest prepared messages and wait (the import command, tests)."""
        return self.store.write_sync(lambda conn: self.write_prepared(conn, batch))

    def ingest_raw(self, raw: bytes, member: str | None, source: str, *, now: datetime | None = None,
                   recipients: Sequence[str] | None = None) -> Ingested | None:
        """Parse and ingest one message synchronously (tests and small tools)."""
        seen = Seen(member, source, now or now_utc(), tuple(recipients) if recipients is not None else None)
        return self.ingest_sync([prepare_one(raw, seen, self.blobs, headers_only=source == "imap-headers")])[0]

    # --- journal -----------------------------------------------------------------------

    async def journal_add(
        self, raw: bytes, member: str, source: str, recipients: Sequence[str] | None, *, state: str
    ) -> int:
        now = now_utc()
        return await self.store.write(
            lambda conn: journal.add(conn, raw, member, source, recipients, state=state, now=now)
        )

    async def journal_add_many(self, items: Sequence[tuple[bytes, str, str]]) -> None:
        """Journal messages read over IMAP: (raw, member, source) each, in one transaction."""
        now = now_utc()
        await self.store.write(lambda conn: journal.add_many(conn, items, now=now))

    async def journal_add_file(self, file: IO[bytes], size: int, member: str, source: str) -> int:
        now = now_utc()
        return await self.store.write(lambda conn: journal.add_file(conn, file, size, member, source, now=now))

    async def journal_accept(self, entry_id: int, recipients: Sequence[str]) -> None:
        await self.store.write(lambda conn: journal.accept(conn, entry_id, recipients))

    async def journal_drop(self, entry_id: int) -> None:
        await self.store.write(lambda conn: journal.drop(conn, entry_id))

    def journal_recover(self) -> int:
        return self.store.write_sync(journal.recover)

    def journal_refs(self, limit: int) -> list[journal.Entry]:
        """Accepted entries waiting for ingest, without their bytes."""
        with self.store.read() as conn:
            return journal.refs(conn, limit)

    def journal_lag(self) -> int:
        with self.store.read() as conn:
            return journal.lag(conn)


def prepare_journal(
    database: Path, blobs_root: Path, entries: Sequence[journal.Entry], team: Team | None = None
) -> list[Prepared]:
    """Read and parse journal entries (in an ingest worker process, or a thread).

    Only the parse results travel back: the bytes are read here from the database and dropped
    once parsed, so the serving process never holds a large message.
    """
    from relayproxy.graph.queries import parse_iso
    from relayproxy.graph.store import connect

    blobs = BlobStore(blobs_root)
    prepared: list[Prepared] = []
    full: list[tuple[bytes, Seen, str | None]] = []
    full_ids: list[int] = []
    conn = connect(database, readonly=True)
    try:
        for entry in entries:
            raw = journal.raw(conn, entry.id)
            if raw is None:
                continue  # already ingested by an earlier pass
            seen = Seen(entry.member, entry.source, parse_iso(entry.created_at), entry.recipients)
            origin = f"journal entry {entry.id}"
            if entry.source == "imap-headers":
                item = prepare_one(raw, seen, blobs, headers_only=True, origin=origin)
                item.journal_id = entry.id
                prepared.append(item)
            else:
                full.append((raw, seen, origin))
                full_ids.append(entry.id)
    finally:
        conn.close()
    for item, entry_id in zip(prepare_many(full, blobs, team), full_ids, strict=True):
        item.journal_id = entry_id
        prepared.append(item)
    for item in prepared:
        if item.mail is not None:
            item.raw = b""
    return prepared


def team_of(settings: Settings) -> Team:
    """The team's addresses and domains as the config names them (for work outside the writer)."""
    return Team.build(settings.team_domains, [(m.login, m.addresses) for m in settings.members])


def prepare_many(
    items: Sequence[tuple[bytes, Seen, str | None]], blobs: BlobStore | None, team: Team | None = None
) -> list[Prepared]:
    """Parse a batch at once (the Rust parser uses every core), then each message's main text,
    enrichment findings and attachment files. A failure to store a file (disk full) raises: the
    batch is retried rather than its mail filed as unparsable.

    With `team`, mail the team sent is not read for enrichment: it would describe a colleague."""
    raws: list[str | bytes] = [raw for raw, _, _ in items]
    try:
        parsed: list[object] = list(fast_mail_parser.parse_many(raws))
    except Exception as exc:  # the batch call itself failed: each message takes the tolerant path
        parsed = [exc] * len(raws)
    prepared: list[Prepared] = []
    for (raw, seen, origin), result in zip(items, parsed, strict=True):
        try:
            mail = fill_from_fast(raw, result)
            if team is None or mail.sender is None or not team.is_team_address(mail.sender.address):
                mail.enrichment = findings_for(mail)  # enrichment (issue 8): before attachment bytes go
            mail.main_text = main_text(mail.text)
        except UnparsableMail as exc:
            prepared.append(Prepared(raw, seen, None, str(exc), origin))
            continue
        except Exception as exc:  # a parser bug costs one message, not the batch
            prepared.append(Prepared(raw, seen, None, f"{type(exc).__name__}: {exc}", origin))
            continue
        store_attachments(mail, blobs)
        prepared.append(Prepared(raw, seen, mail, origin=origin))
    return prepared
