"""Continuous sync, opt-in: sealed credentials in the graph, IDLE watchers on the upstream server.

Theory of operation: a member opts in on the settings page with their mail password (checked
upstream first). `ContinuousSync.opt_in` seals it (relayproxy/sealing.py; refused with a
how-to when no key is set), stores the token (graph/credentials.py) and starts their watchers
(imap/watch.py). Opting out deletes the token and stops the watchers. At serve start, `resume`
unseals every stored token and starts those members' watchers; a missing or changed key is
logged, counted and shown on each affected member's settings page, not a silent stop. This is
the glue between graph/ and imap/, which may not import each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from relayproxy import metrics
from relayproxy.config import Settings
from relayproxy.graph import Graph, credentials
from relayproxy.graph.ingest import iso
from relayproxy.graph.mail import now_utc
from relayproxy.imap.watch import MailboxWatch, MailWatch
from relayproxy.sealing import Credentials, SyncKey, SyncKeyError, Unsealable, load_key

log = logging.getLogger("relayproxy.continuous")


@dataclass(frozen=True)
class ContinuousStatus:
    """What the settings page shows about one member's continuous sync."""

    opted_in: bool
    mailboxes: list[MailboxWatch]
    problem: str | None  # why the watchers are not running although opted in
    key_problem: str | None  # why opting in would be refused now


class ContinuousSync:
    """Opt-in, opt-out and start-up of members' IDLE watchers."""

    def __init__(self, settings: Settings, graph: Graph, watch: MailWatch,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.graph = graph
        self.watch = watch
        self.environ = environ
        self.problems: dict[str, str] = {}  # member -> why their watchers did not start
        metrics.gauge("watch_not_started", lambda: float(len(self.problems)))

    def key(self) -> SyncKey:
        """The sealing key; SyncKeyError (saying how to set one) when there is none or it is bad."""
        return load_key(self.settings, None if self.environ is None else dict(self.environ))

    def key_problem(self) -> str | None:
        try:
            self.key()
        except SyncKeyError as exc:
            return str(exc)
        return None

    async def opt_in(self, member: str, username: str, password: str) -> None:
        """Store the credentials sealed and start watching; SyncKeyError when no key is set."""
        sealed = self.key().seal(Credentials(username, password))
        now = iso(now_utc())
        await self.graph.store.write(lambda conn: credentials.save(conn, member, sealed, now))
        self.problems.pop(member, None)
        await self.watch.start(member, username, password)
        log.info("continuous sync of %s: opted in", member)

    async def opt_out(self, member: str) -> None:
        """Delete the stored credential and stop the watchers."""
        await self.graph.store.write(lambda conn: credentials.delete(conn, member))
        self.problems.pop(member, None)
        await self.watch.stop_member(member)
        log.info("continuous sync of %s: opted out; credential deleted", member)

    async def resume(self) -> int:
        """Start the watchers of every member with a stored credential; returns how many started."""

        def read() -> list[tuple[str, bytes]]:
            with self.graph.store.read() as conn:
                return credentials.all_sealed(conn)

        stored = await asyncio.to_thread(read)
        if not stored:
            return 0
        try:
            key = self.key()
        except SyncKeyError as exc:
            log.error("continuous sync: %d members opted in, none watched: %s", len(stored), exc)
            for member, _ in stored:
                self._cannot_start(member, f"not running: {exc}")
            return 0
        members = {m.login for m in self.settings.members}
        started = 0
        for member, token in stored:
            if member not in members:
                log.info("continuous sync of %s: not a member any more; not watched", member)
                continue  # the credential stays until they opt out (or come back)
            try:
                found = key.unseal(token)
            except Unsealable as exc:
                log.error("continuous sync of %s: %s", member, exc)
                self._cannot_start(member, str(exc))
                continue
            await self.watch.start(member, found.username, found.password)
            started += 1
        return started

    async def apply(self, settings: Settings) -> None:
        """A re-read config: members no longer in it stop being watched (their credential stays
        until they opt out, so a member who comes back is watched again at the next start)."""
        self.settings = self.watch.settings = settings
        configured = {m.login for m in settings.members}
        for member in self.watch.members():
            if member not in configured:
                await self.watch.stop_member(member)
                log.info("continuous sync of %s: not a member any more; stopped", member)

    async def stop(self) -> None:
        await self.watch.stop()

    async def status(self, member: str) -> ContinuousStatus:
        def read() -> bool:
            with self.graph.store.read() as conn:
                return credentials.stored(conn, member)

        opted_in = await asyncio.to_thread(read)
        return ContinuousStatus(opted_in, self.watch.status(member), self.problems.get(member),
                                None if opted_in else self.key_problem())

    def _cannot_start(self, member: str, why: str) -> None:
        self.problems[member] = why
        metrics.inc("watch_errors_total", reason="key")
