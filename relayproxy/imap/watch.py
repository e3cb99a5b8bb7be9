"""Continuous sync: an IDLE connection per mailbox that captures new mail while clients are closed.

Theory of operation
-------------------
A member who opted in on the settings page has their credentials stored sealed; serve hands
them to `MailWatch.start`, which runs one task per mailbox (INBOX and the ``\\Sent``
special-use mailbox, RFC 6154). Each task, on its own upstream connection (the history sync's
`connect`: same address, TLS rules and aioimaplib workarounds):

1. ``EXAMINE`` the mailbox (read-only: no ``\\Seen`` or ``\\Recent`` changes), note UIDVALIDITY;
2. resume after the last UID it recorded (so mail that arrived while it was disconnected is
   read), or, the first time or after a UIDVALIDITY change, start at the current end (older
   mail is the history sync's job);
3. ``UID SEARCH UID <last+1>:*`` then ``UID FETCH <new> (UID BODY.PEEK[])``, handing each batch
   to the injected store, which ingests it through the history sync's idempotent path and
   advances the position in the same transaction;
4. ``IDLE`` (RFC 2177) until the server reports ``EXISTS``, then ``DONE`` and back to 3. IDLE is
   re-issued every `renew` seconds (25 minutes: servers may drop an IDLE after 30).

aioimaplib and IDLE: `idle_start` waits for the continuation with no timeout, and
`wait_server_push` waits on a queue that nothing fills when the connection is lost (#110; the
pending IDLE command itself is failed by sync.py's `_Protocol`). So every wait here is bounded
and also watches the IDLE command: a ``BYE`` or a closed connection ends the wait at once.
Untagged ``EXISTS`` that arrive during SEARCH or FETCH are dropped by the library; the
protocol counts them (`exists_seen`) and the watcher reads again before it idles.

Failures (server gone, timeouts, BYE during IDLE) are retried with exponential backoff for as
long as the member stays opted in; a refused sign-in stops that mailbox's watcher and says so.
Every state change is logged, counted in `/metrics` and kept in `status()` for the settings
page: never a silent stop. Credentials live only in the tasks and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aioimaplib.aioimaplib import STOP_WAIT_SERVER_PUSH

from relayproxy import metrics
from relayproxy.config import Settings
from relayproxy.imap.sync import (
    SignInRefused,
    _check,
    _Client,
    _reason,
    batches,
    connect,
    fetched_messages,
    sent_mailbox,
    sequence_set,
)
from relayproxy.tasks import cancel_and_wait

log = logging.getLogger("relayproxy.imap.watch")

IDLE_RENEW = 25 * 60.0  # RFC 2177 §3: re-issue IDLE at least every 29 minutes
FETCH_BATCH = 50
ROLES = ("INBOX", "Sent")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.I)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.I)


class WatchStore(Protocol):
    """Positions and ingest, provided by graph/ (`GraphWatchStore`); the watcher never sees SQL."""

    async def position(self, member: str, mailbox: str) -> tuple[int, int] | None:
        """(UIDVALIDITY, last UID read), or None when never watched."""
        ...

    async def start_at(self, member: str, mailbox: str, uidvalidity: int, last_uid: int) -> None:
        """Start (again) from `last_uid`."""
        ...

    async def ingest(self, member: str, mailbox: str, messages: Sequence[bytes], last_uid: int) -> int:
        """Ingest whole messages and advance to `last_uid` atomically; returns how many were new."""
        ...


class NoSuchMailbox(Exception):
    """The server has no mailbox for this role (no ``\\Sent`` special-use mailbox)."""


@dataclass
class MailboxWatch:
    """One watched mailbox, as the settings page and /metrics show it."""

    role: str  # INBOX | Sent
    mailbox: str  # the server's name for it
    state: str = "connecting"  # connecting | watching | retrying | stopped
    error: str | None = None
    failures: int = 0  # consecutive failures (reset once watching)
    captured: int = 0  # messages fetched by this watcher since it started
    retry_at: float | None = None  # time.monotonic() of the next attempt, when retrying

    @property
    def retry_in(self) -> float | None:
        return None if self.retry_at is None else max(0.0, self.retry_at - time.monotonic())


class MailWatch:
    """IDLE watchers for the members who opted in to continuous sync: one task per mailbox."""

    def __init__(
        self,
        settings: Settings,
        store: WatchStore,
        *,
        roles: Sequence[str] = ROLES,
        renew: float = IDLE_RENEW,
        backoff: float = 1.0,
        backoff_max: float = 300.0,
        timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.store = store
        self.roles = tuple(roles)
        self.renew = renew
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self._tasks: dict[str, list[asyncio.Task[None]]] = {}
        self._status: dict[str, dict[str, MailboxWatch]] = {}
        self._changed: asyncio.Event | None = None
        metrics.gauge("watch_connections", lambda: float(self._count(lambda b: b.state == "watching")))
        metrics.gauge("watch_failing", lambda: float(self._count(lambda b: b.state in ("retrying", "stopped"))))

    # -- entry points ------------------------------------------------------------------------

    async def start(self, member: str, username: str, password: str) -> None:
        """Watch `member`'s mailboxes with these credentials (restarting watchers already running)."""
        await self.stop_member(member, forget=False)
        loop = asyncio.get_running_loop()
        self._status[member] = {role: MailboxWatch(role, role) for role in self.roles}
        self._tasks[member] = [
            loop.create_task(self._run(member, username, password, box), name=f"watch {member} {role}")
            for role, box in self._status[member].items()
        ]
        log.info("continuous sync of %s: watching %s", member, ", ".join(self.roles))
        self._note()

    async def stop_member(self, member: str, *, forget: bool = True) -> None:
        """Stop `member`'s watchers (their connections close at once)."""
        tasks = self._tasks.pop(member, [])
        await cancel_and_wait(tasks)
        if forget:
            self._status.pop(member, None)
        if tasks:
            log.info("continuous sync of %s: stopped", member)
        self._note()

    async def stop(self) -> None:
        """Stop every watcher (serve's shutdown)."""
        await asyncio.gather(*(self.stop_member(m, forget=False) for m in list(self._tasks)))

    def members(self) -> list[str]:
        """The members whose mail is being watched."""
        return list(self._tasks)

    def watching(self, member: str) -> bool:
        """Whether `member` has watcher tasks (in whatever state)."""
        return member in self._tasks

    def status(self, member: str) -> list[MailboxWatch]:
        """The state of each of `member`'s watched mailboxes."""
        return list(self._status.get(member, {}).values())

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait until `condition()` holds, re-checked after every state change; TimeoutError after `timeout`."""
        async with asyncio.timeout(timeout):
            while not condition():
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()

    # -- one mailbox -------------------------------------------------------------------------

    async def _run(self, member: str, username: str, password: str, box: MailboxWatch) -> None:
        while True:
            client: _Client | None = None
            try:
                self._set(box, "connecting")
                client = await connect(self.settings, username, password, self.timeout)
                await self._watch(client, member, box)
            except SignInRefused as exc:
                self._set(box, "stopped", f"{exc}; not retried: opt in again with the current password")
                metrics.inc("watch_errors_total", reason="signin")
                log.warning("continuous sync of %s, %s: stopped: %s", member, box.role, exc)
                return
            except NoSuchMailbox as exc:
                self._set(box, "stopped", str(exc))
                log.info("continuous sync of %s: %s", member, exc)
                return
            except Exception as exc:
                box.failures += 1
                delay = min(self.backoff_max, self.backoff * 2 ** (box.failures - 1))
                box.retry_at = time.monotonic() + delay
                self._set(box, "retrying", _reason(exc))
                metrics.inc("watch_errors_total", reason=type(exc).__name__)
                log.warning("continuous sync of %s, %s: %s; reconnecting in %.1f s",
                            member, box.mailbox, _reason(exc), delay)
                await asyncio.sleep(delay)
                box.retry_at = None
            finally:
                if client is not None:
                    for task in list(client.tasks):  # IDLE's own tasks fail with Abort as it closes
                        task.add_done_callback(_retrieved)
                    client.abort()

    async def _watch(self, client: _Client, member: str, box: MailboxWatch) -> None:
        box.mailbox = await self._resolve(client, box.role)
        response = await client.examine(box.mailbox)
        _check(response, "EXAMINE")
        lines = [line for line in response.lines if isinstance(line, bytes)]
        validity = next((int(m.group(1)) for line in lines if (m := _UIDVALIDITY.search(line))), 0)
        uidnext = next((int(m.group(1)) for line in lines if (m := _UIDNEXT.search(line))), None)
        known = await self.store.position(member, box.mailbox)
        if known is not None and known[0] == validity:
            last = known[1]
        else:
            last = uidnext - 1 if uidnext is not None else await self._highest(client)
            await self.store.start_at(member, box.mailbox, validity, last)
            if known is not None:
                log.info("continuous sync of %s: %s has a new UIDVALIDITY; watching from its end",
                         member, box.mailbox)
        box.failures = 0
        self._set(box, "watching")
        while True:
            last = await self._read_new(client, member, box, last)
            await self._idle(client)

    async def _resolve(self, client: _Client, role: str) -> str:
        if role.upper() == "INBOX":
            return "INBOX"
        response = await client.list('""', '"*"')
        _check(response, "LIST")
        sent = sent_mailbox(response.lines)
        if sent is None:
            raise NoSuchMailbox("the mail server has no \\Sent mailbox; only INBOX is watched")
        return sent

    async def _highest(self, client: _Client) -> int:
        response = await client.uid_search("UID", "*", charset=None)
        _check(response, "UID SEARCH")
        return max(_uids(response.lines), default=0)

    async def _read_new(self, client: _Client, member: str, box: MailboxWatch, last: int) -> int:
        """Fetch and store every message above `last`, until no EXISTS came in meanwhile."""
        protocol: Any = client.protocol
        while True:
            seen = protocol.exists_seen
            response = await client.uid_search("UID", f"{last + 1}:*", charset=None)
            _check(response, "UID SEARCH")
            new = sorted(uid for uid in _uids(response.lines) if uid > last)  # n:* includes the highest
            for chunk in batches(new, FETCH_BATCH):
                response = await client.uid("fetch", sequence_set(chunk), "(UID BODY.PEEK[])")
                _check(response, "UID FETCH")
                messages = [raw for _, raw in fetched_messages(response.lines)]
                await self.store.ingest(member, box.mailbox, messages, chunk[-1])
                last = chunk[-1]
                box.captured += len(messages)
                metrics.inc("watch_messages_total", len(messages))
                self._note()
            if protocol.exists_seen == seen:
                return last

    async def _idle(self, client: _Client) -> None:
        """IDLE until the server reports new mail or `renew` seconds pass; raises when the connection goes."""
        queue: asyncio.Queue[Any] = client.protocol.idle_queue
        while not queue.empty():  # pushes left from the last IDLE: already read above
            queue.get_nowait()
        seen = client.protocol.exists_seen
        idle = await asyncio.wait_for(client.idle_start(timeout=self.renew), self.timeout)
        push: asyncio.Future[Any] = asyncio.ensure_future(queue.get())
        try:
            while True:
                done, _ = await asyncio.wait({push, idle}, timeout=self.renew + self.timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if idle in done:  # the server ended IDLE itself: BYE and a closed connection (#110)
                    idle.result()
                    raise ConnectionError("the mail server ended IDLE")
                if not done or push.result() == STOP_WAIT_SERVER_PUSH:
                    break  # time to re-issue IDLE
                if any(isinstance(line, bytes) and line.startswith(b"BYE") for line in push.result()):
                    raise ConnectionError("the mail server said BYE during IDLE")
                if client.protocol.exists_seen != seen:
                    break
                push = asyncio.ensure_future(queue.get())  # flags or expunges: keep idling
        finally:
            push.cancel()
        client.idle_done()
        await asyncio.wait_for(idle, self.timeout)

    # -- state -------------------------------------------------------------------------------

    def _set(self, box: MailboxWatch, state: str, error: str | None = None) -> None:
        box.state, box.error = state, error
        self._note()

    def _note(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = asyncio.Event()

    def _count(self, which: Callable[[MailboxWatch], bool]) -> int:
        return sum(1 for boxes in self._status.values() for box in boxes.values() if which(box))


def _retrieved(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _uids(lines: Sequence[Any]) -> list[int]:
    """The UIDs of a UID SEARCH answer (aioimaplib hands over the numbers after ``SEARCH``)."""
    return [int(t) for line in lines[:-1] if isinstance(line, bytes) for t in line.split() if t.isdigit()]
