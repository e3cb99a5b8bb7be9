"""History sync: backfill a member's existing mail from the upstream IMAP server (aioimaplib).

Theory of operation
-------------------
When a member first signs in through the IMAP proxy, the proxy calls `HistorySync.on_login`
with the credentials of that session. The sync then opens its own upstream connection (the same
address and TLS rules as the relay, certificates verified), and for INBOX and the ``\\Sent``
special-use mailbox (RFC 6154; then any extra mailboxes it was given):

1. ``EXAMINE`` (read-only, so no ``\\Recent`` or ``\\Seen`` flag changes), note UIDVALIDITY;
2. ``UID SEARCH SINCE <today - sync.history_days>``;
3. header pass: ``UID FETCH <batch> (UID BODY.PEEK[HEADER])`` in UID batches, each batch
   ingested as header-only copies, so people and dates fill the graph quickly;
4. body pass: ``UID FETCH <batch> (UID BODY.PEEK[])``, batches bounded by count and by bytes
   (sizes from ``RFC822.SIZE``), each completing the header-only copies with text and
   attachments.

Progress lives in the graph (graph/sync_state.py), written in the same transaction as the
batch it describes, through an injected `SyncStore`: this module never imports the graph. A
restart resumes after the last recorded UID of each pass; a changed UIDVALIDITY restarts that
mailbox; re-running finds nothing new. Ingest is idempotent, so a message the proxy already
captured (or a batch fetched twice after a crash) is counted once.

The sync is throttled so the member's own session is barely slowed: a token bucket on bytes
and messages per second, and a yield to clients (after a batch during which the proxy relayed
messages to someone, the sync waits until it stops, up to two seconds per batch). Failures
(server gone, timeouts, BYE) are retried with exponential backoff; a refused sign-in is not
retried. Every outcome is logged, counted in
`/metrics` and recorded per mailbox: never a silent stop. Credentials live only in the running
task and are never logged.

aioimaplib 2.0.3, and what this module works around (its tracker, checked for this version):

* #118 (open): `_handle_responses` recurses once per response line, so a read with more than
  ~1000 lines (a FETCH of many small headers) dies with RecursionError inside the transport.
  `_Protocol.data_received` reads the same responses with a loop.
* `FetchCommand.wait_data` rescans every line of the response for each new line (quadratic in
  the batch size); `_FetchCommand` keeps a running parenthesis balance instead.
* #110 (open): a server that closes the connection (``* BYE``) leaves pending commands, IDLE
  included, waiting forever. `_Protocol.connection_lost` fails them with `Abort`.
* It has no STARTTLS; `_Client` does it first (as the relay does) and hands aioimaplib the TLS
  transport. It has no AUTHENTICATE PLAIN; `_Client.sign_in` sends it (RFC 4616), scrubbed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aioimaplib
from aioimaplib.aioimaplib import CRLF, Command, literal_data_re

from relayproxy import metrics, tls
from relayproxy.config import Settings
from relayproxy.imap.upstream import (
    UpstreamUnavailable,
    describe,
    starttls_answer_ok,
    starttls_command,
    upstream_address,
)
from relayproxy.tasks import cancel_and_wait

log = logging.getLogger("relayproxy.imap.sync")

HEADER_BATCH = 500  # messages per header FETCH
BODY_BATCH = 50  # messages per body FETCH at most ...
BODY_BATCH_BYTES = 8 << 20  # ... and about this many bytes (one bigger message goes alone)
INFLIGHT = 2  # batches being ingested while the next is fetched
DEFAULT_BYTES_PER_SECOND = 2_000_000.0
DEFAULT_MESSAGES_PER_SECOND = 1_000.0


# --- aioimaplib, with its known issues worked around -------------------------------------


class _FetchCommand(aioimaplib.FetchCommand):  # type: ignore[misc]
    """A FETCH whose "response complete?" check is O(1) per line (the library's rescans them all)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._balance = 0

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if type(line) is bytes:  # literals arrive as bytearray and do not count
            if self.FETCH_MESSAGE_DATA_RE.match(line):
                self._balance = 0
            self._balance += line.count(b"(") - line.count(b")")

    def wait_data(self) -> bool:
        return self._balance != 0


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol with an iterative response reader and loud connection loss."""

    lost = False
    exists_seen = 0  # untagged EXISTS lines so far (the IDLE watcher's "anything new?")

    def data_received(self, d: bytes) -> None:
        # Same semantics as the library's recursive `_handle_responses` (#118), as a loop over
        # offsets so long responses neither recurse nor copy the rest of the buffer per line.
        this: Any = self  # the library's attributes are untyped
        data = this.incomplete_line + d if this.incomplete_line else d
        this.incomplete_line = b""
        cmd: Command | None = this.current_command
        this.current_command = None
        pos, size = 0, len(data)
        while True:
            if cmd is not None and cmd.wait_literal_data():
                need = cmd._expected_size - len(cmd._resp_literal_data)
                cmd.append_literal_data(data[pos : pos + need])
                pos = min(size, pos + need)
                if cmd.wait_literal_data():
                    this.current_command = cmd
                    return
            if pos >= size:
                if this.pending_sync_command is not None:
                    this.pending_sync_command.flush()
                if cmd is not None and cmd.wait_data():
                    this.current_command = cmd
                return
            end = data.find(CRLF, pos)
            if end < 0:
                this.incomplete_line = data[pos:]
                this.current_command = cmd
                return
            line = data[pos:end]
            pos = end + 2
            if line.endswith(b" EXISTS") and line.startswith(b"* "):  # RFC 9051 §7.4.1
                self.exists_seen += 1
            handled = self._handle_line(line, cmd)
            literal = literal_data_re.match(line)
            if literal:
                if handled is None:
                    handled = Command("NIL", "unused", loop=self.loop)
                handled.begin_literal_data(int(literal.group("size")))
                cmd = handled
            elif handled is not None and handled.wait_data():
                cmd = handled
            else:
                cmd = None

    async def fetch(
        self, message_set: str, message_parts: str, by_uid: bool = False, timeout: float | None = None
    ) -> Any:
        return await self.execute(
            _FetchCommand(self.new_tag(), message_set, message_parts,
                          prefix="UID" if by_uid else "", loop=self.loop, timeout=timeout)
        )

    def _continuation(self, line: bytes) -> None:
        this: Any = self
        command = this.pending_sync_command
        response = getattr(command, "sasl_response", None)
        if command is not None and command.name == "AUTHENTICATE" and response is not None:
            command.sasl_response = None
            self.transport.write(response + CRLF)  # RFC 9051 §6.2.2; not logged
            return
        super()._continuation(line)

    async def execute(self, command: Command, scrub: str | None = None) -> Any:
        if self.lost:  # the library would send into a closed transport and wait for ever
            raise aioimaplib.Abort("the connection to the mail server is closed")
        return await super().execute(command, scrub=scrub)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        # #110: without this, a command (IDLE included) waits forever when the server goes.
        reason = aioimaplib.Abort(
            "the mail server closed the connection" + (f" ({exc})" if exc else "")
        )
        this: Any = self
        pending = [c for c in this.pending_async_commands.values() if c is not None]
        if this.pending_sync_command is not None:
            pending.append(this.pending_sync_command)
        this.pending_async_commands.clear()
        this.pending_sync_command = None
        for command in pending:
            command._exception = reason
            command.close(b"", "BYE")
        super().connection_lost(exc)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """An aioimaplib client connected the relay's way: implicit TLS, STARTTLS or plain."""

    def __init__(self, host: str, port: int, *, security: str, context: Any, timeout: float) -> None:
        self._security = security
        self._context = context
        super().__init__(host, port, timeout=timeout, ssl_context=context)

    def create_client(self, host: str, port: int, loop: Any, conn_lost_cb: Any = None, ssl_context: Any = None) -> None:
        local = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local, conn_lost_cb)
        self._client_task = local.create_task(self._open(local, host, port))

    async def _open(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        if self._security == "tls":
            await loop.create_connection(lambda: self.protocol, host, port, ssl=self._context, server_hostname=host)
            return
        if self._security == "none":
            await loop.create_connection(lambda: self.protocol, host, port)
            return
        # RFC 9051 §6.2.1, done here because aioimaplib cannot; the greeting is replayed after.
        reader, writer = await asyncio.open_connection(host, port)
        greeting = await reader.readline()
        if not greeting.upper().startswith(b"* OK"):
            writer.close()
            raise UpstreamUnavailable(f"the mail server at {host}:{port} did not greet with OK")
        writer.write(starttls_command())
        while (ok := starttls_answer_ok(await reader.readline() or b"RP0 NO closed")) is None:
            pass
        if not ok:
            writer.close()
            raise UpstreamUnavailable(f"the mail server at {host}:{port} refused STARTTLS")
        await writer.start_tls(self._context, server_hostname=host)
        self._stream = writer  # a collected StreamWriter closes its transport
        transport = writer.transport
        transport.set_protocol(self.protocol)
        self.protocol.connection_made(transport)
        self.protocol.data_received(greeting)

    async def sign_in(self, username: str, password: str) -> bool:
        """AUTHENTICATE PLAIN when offered (any byte of a password), else LOGIN; True on OK."""
        protocol = self.protocol
        if "AUTH=PLAIN" in protocol.capabilities:
            token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode())
            if "SASL-IR" in protocol.capabilities:  # RFC 4959: the response on the command line
                command = Command("AUTHENTICATE", protocol.new_tag(), "PLAIN", token.decode(), loop=protocol.loop)
                scrub = token.decode()
            else:
                command = Command("AUTHENTICATE", protocol.new_tag(), "PLAIN", loop=protocol.loop)
                command.sasl_response = token
                scrub = None
            response = await asyncio.wait_for(protocol.execute(command, scrub=scrub), self.timeout)
            ok = response.result == "OK"
            if ok:
                protocol.state = aioimaplib.AUTH
        else:
            response = await asyncio.wait_for(
                protocol.login(aioimaplib.quoted(username), password), self.timeout
            )
            ok = response.result == "OK"
        if ok:
            await asyncio.wait_for(protocol.capability(), self.timeout)
        return ok

    async def examine(self, mailbox: str = "INBOX") -> Any:
        """EXAMINE, read-only (RFC 9051 §6.3.3), and the state aioimaplib needs for UID commands."""
        response = await asyncio.wait_for(
            self.protocol.execute(Command("EXAMINE", self.protocol.new_tag(), aioimaplib.quoted(mailbox),
                                          loop=self.protocol.loop)),
            self.timeout,
        )
        if response.result == "OK":
            self.protocol.state = aioimaplib.SELECTED
        return response

    def abort(self) -> None:
        transport = self.protocol.transport
        if transport is not None:
            transport.abort()


# --- pure helpers -------------------------------------------------------------------------

_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')
_LITERAL_END = re.compile(rb"\{(\d+)\+?\}$")


def _tokens(line: bytes) -> list[bytes]:
    out = []
    for m in _TOKEN.finditer(line):
        if m.group(1) is not None:
            out.append(re.sub(rb"\\(.)", rb"\1", m.group(1)))
        else:
            out.append(m.group(2))
    return out


def _client_commands(data: bytes) -> list[list[bytes]]:
    """Client bytes as commands of tokens, literals (RFC 9051 §4.3, LITERAL+ too) in place."""
    commands: list[list[bytes]] = []
    tokens: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        line = data[pos : end if end >= 0 else len(data)].rstrip(b"\r")
        pos = end + 1 if end >= 0 else len(data)
        literal = _LITERAL_END.search(line)
        if literal:
            tokens += _tokens(line[: literal.start()])
            size = int(literal.group(1))
            tokens.append(data[pos : pos + size])
            pos += size
            continue
        tokens += _tokens(line)
        commands.append(tokens)
        tokens = []
    return commands


def credentials_from_client(data: bytes) -> tuple[str, str] | None:
    """The user name and password of the last LOGIN or AUTHENTICATE PLAIN in `data`.

    `data` is what a client sent up to a successful sign-in. Returns None when the sign-in was
    another mechanism, or PLAIN on behalf of another identity (not repeatable with LOGIN).
    """
    commands = _client_commands(data)
    for index in range(len(commands) - 1, -1, -1):
        tokens = commands[index]
        if len(tokens) < 2:
            continue
        name = tokens[1].upper()
        try:
            if name == b"LOGIN" and len(tokens) >= 4:
                return tokens[2].decode(), tokens[3].decode()
            if name == b"AUTHENTICATE" and len(tokens) >= 3 and tokens[2].upper() == b"PLAIN":
                if len(tokens) >= 4 and tokens[3] != b"=":
                    response = tokens[3]
                elif index + 1 < len(commands) and commands[index + 1]:
                    response = commands[index + 1][0]
                else:
                    return None
                parts = base64.b64decode(response, validate=True).split(b"\0")
                if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
                    return None
                return parts[1].decode(), parts[2].decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if name in (b"LOGIN", b"AUTHENTICATE"):
            return None
    return None


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FETCH_START = re.compile(rb"\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.I)
_LIST = re.compile(rb'^\(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.*)$', re.I)


def imap_date(moment: datetime) -> str:
    """RFC 9051 §9 `date` (SEARCH SINCE), independent of the locale."""
    return f"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year}"


def sequence_set(uids: Sequence[int]) -> str:
    """Sorted UIDs as a compact RFC 9051 sequence set: 1:500,502,510:512."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev > start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev > start else str(start))
    return ",".join(parts)


def fetched_messages(lines: Sequence[Any]) -> list[tuple[int, bytes]]:
    """(UID, literal) for each message in a FETCH response as aioimaplib returns its lines."""
    out: list[tuple[int, bytes]] = []
    uid: int | None = None
    literal: bytes | None = None
    for item in lines:
        if isinstance(item, bytes):
            if _FETCH_START.match(item):
                if uid is not None and literal is not None:
                    out.append((uid, literal))
                uid, literal = None, None
            if uid is None and (m := _UID.search(item)):
                uid = int(m.group(1))
        else:  # a literal (bytearray)
            literal = bytes(item)
    if uid is not None and literal is not None:
        out.append((uid, literal))
    return out


def fetched_sizes(lines: Sequence[Any]) -> dict[int, int]:
    """UID → RFC822.SIZE from a ``(UID RFC822.SIZE)`` FETCH response."""
    sizes = {}
    for item in lines:
        if isinstance(item, bytes) and (u := _UID.search(item)) and (s := _SIZE.search(item)):
            sizes[int(u.group(1))] = int(s.group(1))
    return sizes


def sent_mailbox(lines: Sequence[Any]) -> str | None:
    """The ``\\Sent`` special-use mailbox (RFC 6154) in a LIST response, if any."""
    items = list(lines)
    for index, item in enumerate(items):
        if not isinstance(item, bytes) or not (m := _LIST.match(item)):
            continue
        if b"\\sent" not in m.group(1).lower().split():
            continue
        name = m.group(2)
        if _LITERAL_END.search(name) and index + 1 < len(items):
            return bytes(items[index + 1]).decode("utf-8", "replace")
        if name.startswith(b'"'):
            name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        return name.decode("utf-8", "replace")
    return None


def batches(uids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(uids), size):
        yield list(uids[start : start + size])


def sized_batches(uids: Sequence[int], sizes: dict[int, int], count: int, budget: int) -> Iterator[list[int]]:
    """At most `count` UIDs and about `budget` bytes per batch; a bigger message goes alone."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= count or total + size > budget):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


class RelayActivity:
    """True when the IMAP proxy relayed messages since the last call: a client is pulling mail.

    Reads the relay's own `messages_relayed_total` counter, so the sync needs no hook in it.
    """

    def __init__(self) -> None:
        self._seen = metrics.value("messages_relayed_total", protocol="imap")

    def __call__(self) -> bool:
        now = metrics.value("messages_relayed_total", protocol="imap")
        busy, self._seen = now != self._seen, now
        return busy


class Throttle:
    """A token bucket on bytes and messages per second (None: no limit), and a yield to
    members' own sessions: while `busy()` says a client is pulling mail, the sync waits, up to
    `max_yield` seconds per batch so that it still moves on."""

    def __init__(self, bytes_per_second: float | None, messages_per_second: float | None,
                 burst: float = 0.25, busy: Callable[[], bool] | None = None, max_yield: float = 2.0) -> None:
        self.bytes_per_second = bytes_per_second
        self.messages_per_second = messages_per_second
        self.burst = burst
        self.busy = busy
        self.max_yield = max_yield
        self._ready = time.monotonic()

    async def spend(self, nbytes: int, messages: int) -> None:
        """Account for a batch; sleeps when the sync is ahead of its allowance."""
        cost = 0.0
        if self.bytes_per_second:
            cost = max(cost, nbytes / self.bytes_per_second)
        if self.messages_per_second:
            cost = max(cost, messages / self.messages_per_second)
        now = time.monotonic()
        self._ready = max(self._ready, now - self.burst) + cost
        delay = self._ready - now
        await asyncio.sleep(delay if delay > 0 else 0)
        if self.busy is not None and self.busy():  # a client pulled mail during this batch
            deadline = time.monotonic() + self.max_yield
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if not self.busy():
                    break


# --- what the sync is injected with ---------------------------------------------------------


class Progress(Protocol):
    """Where a mailbox's sync stands (graph/sync_state.py `MailboxProgress`)."""

    @property
    def uidvalidity(self) -> int: ...

    @property
    def headers_uid(self) -> int: ...

    @property
    def bodies_uid(self) -> int: ...


class SyncStore(Protocol):
    """Progress and ingest, provided by graph/ (`GraphSyncStore`); the sync never sees SQL."""

    async def load(self, member: str, mailbox: str) -> Progress | None:
        """The recorded progress, or None when never synced."""
        ...

    async def begin(self, member: str, mailbox: str, uidvalidity: int, in_window: int) -> Progress:
        """Start or resume; a new UIDVALIDITY forgets the old progress."""
        ...

    async def ingest(
        self, member: str, mailbox: str, messages: Sequence[bytes], *, headers_only: bool, last_uid: int
    ) -> int:
        """Ingest a batch and advance progress to `last_uid` atomically; returns how many were new."""
        ...

    async def finish(self, member: str, mailbox: str, error: str | None = None) -> None:
        """Record the end of a pass over `mailbox`, or why it failed."""
        ...


# --- the sync ------------------------------------------------------------------------------


class SignInRefused(Exception):
    """The upstream server refused the member's credentials (not retried)."""


class SyncFailed(Exception):
    """The server answered a sync command with NO or BAD."""


@dataclass
class MailboxReport:
    mailbox: str
    in_window: int = 0
    headers: int = 0  # header-only copies fetched
    bodies: int = 0  # whole messages fetched
    new: int = 0  # messages that were not in the graph before
    restarted: bool = False  # UIDVALIDITY changed since the last sync
    pending: int = 0  # messages whose body is still to fetch
    seconds_headers: float = 0.0
    seconds_bodies: float = 0.0


@dataclass
class SyncReport:
    """What one member's sync did; `error` says why it stopped when it did not finish."""

    member: str
    mailboxes: dict[str, MailboxReport] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    finished: bool = False

    def total(self, what: str) -> int:
        return sum(int(getattr(m, what)) for m in self.mailboxes.values())


class HistorySync:
    """Backfills members' mail from the upstream server; one background task per member."""

    def __init__(
        self,
        settings: Settings,
        store: SyncStore,
        *,
        extra_mailboxes: Sequence[str] = (),
        header_batch: int = HEADER_BATCH,
        body_batch: int = BODY_BATCH,
        body_batch_bytes: int = BODY_BATCH_BYTES,
        bytes_per_second: float | None = DEFAULT_BYTES_PER_SECOND,
        messages_per_second: float | None = DEFAULT_MESSAGES_PER_SECOND,
        yield_to_clients: bool = True,
        retries: int = 5,
        backoff: float = 2.0,
        backoff_max: float = 300.0,
        timeout: float = 60.0,
        bodies: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.extra_mailboxes = tuple(extra_mailboxes)
        self.header_batch = header_batch
        self.body_batch = body_batch
        self.body_batch_bytes = body_batch_bytes
        self.bytes_per_second = bytes_per_second
        self.messages_per_second = messages_per_second
        self.yield_to_clients = yield_to_clients
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.bodies = bodies
        self.reports: dict[str, SyncReport] = {}  # the latest run per member
        self._tasks: dict[str, asyncio.Task[SyncReport]] = {}
        self._done: set[str] = set()  # members synced by this process
        metrics.gauge("sync_running", lambda: float(len(self._tasks)))
        metrics.gauge("sync_pending_messages", lambda: float(sum(
            box.pending for report in self.reports.values() for box in report.mailboxes.values()
        )))

    # -- entry points ------------------------------------------------------------------------

    def on_login(self, member: str, username: str, password: str) -> None:
        """The proxy saw `member` sign in (upstream said OK): start their sync unless it ran.

        Called from the event loop; returns at once. The credentials stay in the task only.
        """
        if self.settings.sync_history_days <= 0 or member in self._tasks or member in self._done:
            return
        self.start(member, username, password)

    def start(self, member: str, username: str, password: str) -> asyncio.Task[SyncReport]:
        """Start (or return the running) sync of `member` in the background."""
        running = self._tasks.get(member)
        if running is not None:
            return running
        task = asyncio.get_running_loop().create_task(self.sync(member, username, password),
                                                      name=f"history-sync {member}")
        self._tasks[member] = task
        task.add_done_callback(lambda _t: self._tasks.pop(member, None))
        return task

    def running(self, member: str) -> bool:
        return member in self._tasks

    async def wait(self, member: str) -> SyncReport | None:
        """Wait for `member`'s running sync, if any; returns its report."""
        task = self._tasks.get(member)
        if task is None:
            return self.reports.get(member)
        return await asyncio.shield(task)

    async def stop(self) -> None:
        """Cancel running syncs (progress is kept: the next start resumes)."""
        await cancel_and_wait(list(self._tasks.values()))

    async def sync(self, member: str, username: str, password: str) -> SyncReport:
        """Sync `member` to the end, retrying failures with backoff; never raises for them."""
        report = SyncReport(member)
        self.reports[member] = report
        log.info("history sync of %s: starting (%d days)", member, self.settings.sync_history_days)
        throttle = Throttle(self.bytes_per_second, self.messages_per_second,
                            busy=RelayActivity() if self.yield_to_clients else None)
        while True:
            report.attempts += 1
            try:
                await self._sync_once(member, username, password, report, throttle)
            except SignInRefused as exc:
                report.error = str(exc)
                metrics.inc("sync_errors_total", reason="signin")
                log.warning("history sync of %s stopped: %s", member, exc)
                break
            except asyncio.CancelledError:
                report.error = "stopped"
                raise
            except Exception as exc:
                reason = _reason(exc)
                report.error = reason
                metrics.inc("sync_errors_total", reason=type(exc).__name__)
                if report.attempts > self.retries:
                    log.error("history sync of %s failed after %d attempts: %s", member, report.attempts, reason)
                    break
                delay = min(self.backoff_max, self.backoff * 2 ** (report.attempts - 1))
                log.warning("history sync of %s: %s; retrying in %.1f s", member, reason, delay)
                await asyncio.sleep(delay)
                continue
            report.error = None
            report.finished = True
            self._done.add(member)
            break
        metrics.inc("sync_runs_total", outcome="done" if report.finished else "failed")
        log.info("history sync of %s: %s; %d headers, %d bodies, %d new", member,
                 "done" if report.finished else f"stopped ({report.error})",
                 report.total("headers"), report.total("bodies"), report.total("new"))
        return report

    # -- one connection ----------------------------------------------------------------------

    async def _connect(self, username: str, password: str) -> _Client:
        return await connect(self.settings, username, password, self.timeout)

    async def _sync_once(
        self, member: str, username: str, password: str, report: SyncReport, throttle: Throttle
    ) -> None:
        client = await self._connect(username, password)
        try:
            for mailbox in await self._mailboxes(client):
                await self._sync_mailbox(client, member, mailbox, report, throttle)
        finally:
            try:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.logout(), 5)
            finally:  # a second cancellation during LOGOUT still closes the connection
                client.abort()

    async def _mailboxes(self, client: _Client) -> list[str]:
        response = await client.list('""', '"*"')
        _check(response, "LIST")
        sent = sent_mailbox(response.lines)
        found = ["INBOX"] + ([sent] if sent and sent.upper() != "INBOX" else [])
        return found + [m for m in self.extra_mailboxes if m not in found]

    async def _sync_mailbox(
        self, client: _Client, member: str, mailbox: str, report: SyncReport, throttle: Throttle
    ) -> None:
        response = await client.examine(mailbox)
        if response.result != "OK":
            log.warning("history sync of %s: mailbox %s cannot be opened; skipped", member, mailbox)
            return
        validity = next((int(m.group(1)) for line in response.lines if isinstance(line, bytes)
                         and (m := _UIDVALIDITY.search(line))), 0)
        since = datetime.now(UTC) - timedelta(days=self.settings.sync_history_days)
        response = await client.uid_search("SINCE", imap_date(since), charset=None)
        _check(response, "UID SEARCH")
        uids = sorted({int(t) for line in response.lines[:-1] if isinstance(line, bytes)
                       for t in line.split() if t.isdigit()})
        before = await self.store.load(member, mailbox)
        progress = await self.store.begin(member, mailbox, validity, len(uids))
        box = report.mailboxes.setdefault(mailbox, MailboxReport(mailbox))
        box.in_window = len(uids)
        box.pending = sum(1 for u in uids if u > progress.bodies_uid) if self.bodies else 0
        if before is not None and before.uidvalidity != validity:
            box.restarted = True
            metrics.inc("sync_restarts_total")
            log.info("history sync of %s: %s has a new UIDVALIDITY; reading it again", member, mailbox)
        try:
            todo = [u for u in uids if u > progress.headers_uid]
            started = time.perf_counter()
            await self._pass(client, member, mailbox, batches(todo, self.header_batch), True, box, throttle)
            box.seconds_headers += time.perf_counter() - started
            if self.bodies:
                todo = [u for u in uids if u > progress.bodies_uid]
                sizes: dict[int, int] = {}
                if todo:
                    response = await client.uid("fetch", sequence_set(todo), "(UID RFC822.SIZE)")
                    _check(response, "UID FETCH")
                    sizes = fetched_sizes(response.lines)
                started = time.perf_counter()
                chunks = sized_batches(todo, sizes, self.body_batch, self.body_batch_bytes)
                await self._pass(client, member, mailbox, chunks, False, box, throttle)
                box.seconds_bodies += time.perf_counter() - started
        except (asyncio.CancelledError, Exception) as exc:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.finish(member, mailbox, _reason(exc)))
            raise
        await self.store.finish(member, mailbox)

    async def _pass(
        self, client: _Client, member: str, mailbox: str, chunks: Iterator[list[int]], headers_only: bool,
        box: MailboxReport, throttle: Throttle,
    ) -> None:
        """Fetch batch after batch while earlier ones are ingested (`INFLIGHT` at most; the
        store writes them in order)."""
        item = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        phase = "headers" if headers_only else "bodies"
        ingesting: deque[asyncio.Future[int]] = deque()
        try:
            for uids in chunks:
                response = await client.uid("fetch", sequence_set(uids), f"(UID {item})")
                _check(response, "UID FETCH")
                messages = [raw for _, raw in fetched_messages(response.lines)]
                while len(ingesting) >= INFLIGHT:
                    box.new += await ingesting.popleft()
                ingesting.append(asyncio.ensure_future(
                    self.store.ingest(member, mailbox, messages, headers_only=headers_only, last_uid=uids[-1])
                ))
                setattr(box, phase, getattr(box, phase) + len(messages))
                if not headers_only:
                    box.pending = max(0, box.pending - len(uids))
                metrics.inc("sync_messages_total", len(messages), phase=phase)
                await throttle.spend(sum(len(m) for m in messages), len(messages))
            while ingesting:
                box.new += await ingesting.popleft()
        finally:
            # Let batches already handed over land (their progress is recorded with them).
            for future in ingesting:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(future)


async def connect(settings: Settings, username: str, password: str, timeout: float) -> _Client:
    """A signed-in aioimaplib client to the upstream server, connected the relay's way.

    Raises UpstreamUnavailable when the server cannot be reached, SignInRefused when it says no.
    """
    where = upstream_address(settings)
    security = settings.imap.upstream_security
    context = tls.upstream_context(settings) if security != "none" else None
    client = _Client(where.host, where.port, security=security, context=context, timeout=timeout)
    try:
        await client.wait_hello_from_server()
    except Exception as exc:
        client.abort()
        raise UpstreamUnavailable(describe(exc, where)) from None
    try:
        accepted = await client.sign_in(username, password)
    except BaseException:
        client.abort()
        raise
    if not accepted:
        client.abort()
        raise SignInRefused(f"the mail server at {where} refused the member's sign-in")
    return client


def _check(response: Any, what: str) -> None:
    if response.result != "OK":
        text = response.lines[-1] if response.lines else b""
        detail = bytes(text).decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else str(text)
        raise SyncFailed(f"the mail server answered {what} with {response.result} {detail}".strip())


def _reason(exc: BaseException) -> str:
    """One sentence for a sync failure (never containing credentials)."""
    if isinstance(exc, asyncio.CancelledError):
        return "stopped"
    if isinstance(exc, UpstreamUnavailable | SyncFailed | SignInRefused):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aioimaplib.CommandTimeout):
        return "the mail server did not answer in time"
    if isinstance(exc, aioimaplib.Abort):
        return str(exc)
    if isinstance(exc, OSError):
        return f"the connection to the mail server failed ({exc.strerror or exc})"
    return f"{type(exc).__name__}: {exc}"


LoginHook = Callable[[str, str, str], None]
