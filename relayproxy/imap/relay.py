"""The IMAP proxy: an asyncio shell around the sans-IO `parser.Connection`.

Theory of operation
-------------------
`ImapProxy` listens on ``imap.listen`` (plaintext, STARTTLS offered when ``[tls]`` is set) and
``imap.listen_tls`` (implicit TLS). Each client connection becomes a `_Session` holding two
asyncio protocols, one per socket; on accept it connects to the upstream (see upstream.py) and
only then lets the client's bytes in, so the first thing the client hears is the server's
greeting -- or ``* BYE [UNAVAILABLE] <reason>`` when the server cannot be reached.

Bytes go straight from one transport to the other (asyncio protocols, reads of up to 256 KiB,
no streams in between). For each read the session asks the parser's framing layer what to
forward (the bytes themselves, save for capability lines and commands the proxy answers),
writes that, and only then runs the interpreter for events. An exception from the parser
switches the session to a blind pipe for the rest of its life and counts
``parser_fallbacks_total``: the mail keeps flowing. Captured payloads go to `Capture.received`,
which returns at once; payloads spilled to a temporary file are read back on a worker thread
first, so the event loop never waits on the disk for them.

Flow control is the transports' own: when one side's write buffer passes its high-water mark
the other side stops reading until it drains, so memory per session is bounded by the buffer
limits plus the parser's spill threshold.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from relayproxy import metrics, tls
from relayproxy.capture import Capture
from relayproxy.config import HostPort, Settings, is_loopback
from relayproxy.imap.literal import DEFAULT_SPILL_THRESHOLD, Payload
from relayproxy.imap.parser import (
    Appended,
    CompressionStarted,
    Connection,
    Event,
    LoggedIn,
    MessageFetched,
)
from relayproxy.imap.sync import credentials_from_client
from relayproxy.imap.upstream import (
    UpstreamUnavailable,
    describe,
    starttls_answer_ok,
    starttls_command,
    upstream_address,
)
from relayproxy.logs import SessionLog, new_session_id

log = logging.getLogger("relayproxy.imap")

_HIGH_WATER = 1 << 20  # write buffer size at which the other side stops reading
_LOW_WATER = 256 << 10


class ImapProxy:
    """The IMAP listeners and their sessions."""

    def __init__(
        self,
        settings: Settings,
        capture: Capture,
        *,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
        connect_timeout: float = 15.0,
    ) -> None:
        self.settings = settings
        self.capture = capture
        self.spill_threshold = spill_threshold
        self.connect_timeout = connect_timeout
        self.server_context = tls.server_context(settings)
        security = settings.imap.upstream_security
        self.upstream_context = tls.upstream_context(settings) if security != "none" else None
        self.port: int | None = None
        self.tls_port: int | None = None
        self.sessions: set[_Session] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._all_closed = asyncio.Event()
        # Called as on_login(member, username, password) after the upstream accepted a member's
        # LOGIN or AUTHENTICATE PLAIN (the history sync, imap/sync.py); the password is not kept.
        self.on_login: Callable[[str, str, str], None] | None = None

    async def start(self) -> None:
        """Bind the listeners; `port` and `tls_port` are then the bound ports."""
        loop = asyncio.get_running_loop()
        listen, listen_tls = self.settings.imap.listen, self.settings.imap.listen_tls
        self._servers.append(await self._listen(loop, "imap.listen", listen, None))
        self.port = self._servers[-1].sockets[0].getsockname()[1]
        if listen_tls is not None and self.server_context is not None:
            self._servers.append(
                await self._listen(loop, "imap.listen_tls", listen_tls, self.server_context)
            )
            self.tls_port = self._servers[-1].sockets[0].getsockname()[1]
        also = f" and {HostPort(listen_tls.host, self.tls_port or 0)} (TLS)" if listen_tls else ""
        log.info("IMAP proxy listening on %s%s, relaying to %s (%s)",
                 HostPort(listen.host, self.port), also,
                 self.settings.imap.upstream, self.settings.imap.upstream_security)

    async def _listen(
        self,
        loop: asyncio.AbstractEventLoop,
        key: str,
        where: HostPort,
        context: ssl.SSLContext | None,
    ) -> asyncio.Server:
        implicit = context is not None
        try:
            return await loop.create_server(
                lambda: _ClientSide(self, implicit), where.host, where.port,
                ssl=context, reuse_address=True,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"{key} {where}: cannot listen ({reason})") from None

    async def stop(self, timeout: float) -> None:
        """Stop accepting; let sessions finish their commands for up to `timeout` seconds, then
        send the rest ``* BYE`` and close them."""
        self._stopping = True
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.stop_when_quiet()
        if self.sessions:
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                pass
        for session in list(self.sessions):
            session.shutdown("relayproxy is shutting down", force=True)
        if self.sessions:
            try:
                await asyncio.wait_for(self._all_closed.wait(), 2.0)
            except TimeoutError:
                for session in list(self.sessions):
                    session.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def close(self) -> None:
        """Stop at once: every session gets ``* BYE`` now."""
        await self.stop(0)
        for task in list(self._tasks):
            task.cancel()

    # -- helpers used by sessions ----------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("IMAP background task failed", exc_info=task.exception())

    def session_opened(self, session: _Session) -> None:
        self.sessions.add(session)
        self._all_closed.clear()
        metrics.inc("connections_total", protocol="imap")
        metrics.inc("connections_open", protocol="imap")

    def session_closed(self, session: _Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            metrics.inc("connections_open", -1, protocol="imap")
        if not self.sessions:
            self._all_closed.set()


class _ClientSide(asyncio.Protocol):
    """The client's socket: hands everything to the session."""

    def __init__(self, proxy: ImapProxy, implicit_tls: bool) -> None:
        self.proxy = proxy
        self.implicit_tls = implicit_tls
        self.session: _Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.session = _Session(self.proxy, self, transport, self.implicit_tls)

    def data_received(self, data: bytes) -> None:
        assert self.session is not None
        self.session.client_data(data)

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.client_lost()

    def pause_writing(self) -> None:
        if self.session is not None:
            self.session.pause_upstream(True)

    def resume_writing(self) -> None:
        if self.session is not None:
            self.session.pause_upstream(False)


class _UpstreamSide(asyncio.Protocol):
    """The upstream socket: lines for the STARTTLS handshake first, then the session."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.relaying = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def data_received(self, data: bytes) -> None:
        if self.relaying:
            self.session.server_data(data)
            return
        self._buffer += data
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read_line(self) -> bytes:
        """One line, during the handshake before relaying starts."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if self._closed:
                raise UpstreamUnavailable("the mail server closed the connection during setup")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def start_relaying(self) -> bytes:
        """Switch to relaying; returns bytes already read past the handshake."""
        self.relaying = True
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest

    def eof_received(self) -> bool | None:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()
        self.session.upstream_lost()

    def pause_writing(self) -> None:
        self.session.pause_client(True)

    def resume_writing(self) -> None:
        self.session.pause_client(False)


class _Session:
    """One client connection and its upstream connection."""

    def __init__(
        self, proxy: ImapProxy, side: _ClientSide, transport: asyncio.Transport, implicit_tls: bool
    ) -> None:
        self.proxy = proxy
        self.client_side = side
        self.client = transport
        self.upstream: asyncio.Transport | None = None
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        self.log = SessionLog(log, new_session_id("imap"), lambda: self.member)
        self.conn = Connection(
            client_tls=implicit_tls,
            tls_available=proxy.server_context is not None,
            loopback=is_loopback(self.peer),
            spill_threshold=proxy.spill_threshold,
        )
        self.blind = False
        self.member: str | None = None
        self.closed = False
        self._early: list[bytes] = []  # client bytes before the upstream is ready
        self._replies: list[bytes] = []
        self._tls_wanted = False
        self._stop_when_quiet = False
        self._greeting = b""  # the upstream's greeting, kept during its STARTTLS
        self._signin: bytearray | None = bytearray() if proxy.on_login is not None else None
        transport.set_write_buffer_limits(_HIGH_WATER, _LOW_WATER)
        transport.pause_reading()
        proxy.session_opened(self)
        proxy.spawn(self._open())

    # -- setup -----------------------------------------------------------------------------

    async def _open(self) -> None:
        proxy = self.proxy
        settings = proxy.settings
        loop = asyncio.get_running_loop()
        try:
            where = upstream_address(settings)
            security = settings.imap.upstream_security
            side = _UpstreamSide(self)
            transport: asyncio.BaseTransport
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: side, where.host, where.port,
                        ssl=proxy.upstream_context if security == "tls" else None,
                        server_hostname=where.host if security == "tls" else None,
                    ),
                    proxy.connect_timeout,
                )
                if security == "starttls":
                    transport = await asyncio.wait_for(
                        self._upstream_starttls(loop, transport, side, where), proxy.connect_timeout
                    )
            except Exception as exc:  # every failure becomes a BYE with its reason
                raise UpstreamUnavailable(describe(exc, where)) from None
        except UpstreamUnavailable as exc:
            self.log.warning("IMAP client %s: %s", self.peer, exc)
            if not self.closed:
                self.client.write(b"* BYE [UNAVAILABLE] " + str(exc).encode() + b"\r\n")
                self.client.close()
            return
        if self.closed:
            transport.close()
            return
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(_HIGH_WATER, _LOW_WATER)
        self.upstream = transport
        rest = side.start_relaying()
        if self._greeting:
            self.server_data(self._greeting + rest)
        elif rest:
            self.server_data(rest)
        early, self._early = self._early, []
        for data in early:
            self.client_data(data)
        if not self.closed:
            self.client.resume_reading()

    async def _upstream_starttls(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.BaseTransport,
        side: _UpstreamSide,
        where: HostPort,
    ) -> asyncio.BaseTransport:
        """RFC 9051 §6.2.1 on the proxy's own behalf; the greeting is kept for the client."""
        greeting = await side.read_line()
        if not greeting.upper().startswith(b"* OK"):
            raise UpstreamUnavailable(f"the mail server at {where} did not greet with OK")
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(starttls_command())
        while (ok := starttls_answer_ok(await side.read_line())) is None:
            pass
        if not ok:
            raise UpstreamUnavailable(f"the mail server at {where} refused STARTTLS")
        context = self.proxy.upstream_context
        assert context is not None
        new = await loop.start_tls(transport, side, context, server_hostname=where.host)
        if new is None:
            raise UpstreamUnavailable(f"TLS with the mail server at {where} could not start")
        self._greeting = greeting
        return new

    # -- data ------------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is None:
            self._early.append(data)
            return
        if self._signin is not None and len(self._signin) < 65536:
            self._signin += data  # until sign-in, for on_login
        if self.blind:
            upstream.write(data)
            return
        conn = self.conn
        try:
            out = conn.receive_client(data)
        except Exception:
            self._fall_back("client", data)
            return
        if out:
            upstream.write(out)
        try:
            events = conn.client_events()
        except Exception:
            self._fall_back("client")
            return
        if events:
            self._handle(events)
        replies = conn.take_replies()
        if replies:
            self._replies += replies
            self._tls_wanted = conn.tls_requested
            self._flush_replies()
        if self._stop_when_quiet:
            self._maybe_stop()

    def server_data(self, data: bytes) -> None:
        if self.blind:
            self.client.write(data)
            return
        conn = self.conn
        try:
            out = conn.receive_server(data)
        except Exception:
            self._fall_back("server", data)
            return
        if out:
            self.client.write(out)
        try:
            events = conn.server_events()
        except Exception:
            self._fall_back("server")
            return
        if events:
            self._handle(events)
        if self._replies:
            self._flush_replies()
        if self._stop_when_quiet:
            self._maybe_stop()

    def _fall_back(self, direction: str, unforwarded: bytes = b"") -> None:
        """The parser failed: pipe this connection blindly from now on (bytes keep flowing)."""
        self.log.warning("IMAP session from %s: parser failed on %s data; relaying blindly from now on",
                    self.peer, direction, exc_info=log.isEnabledFor(logging.DEBUG))
        metrics.inc("parser_fallbacks_total", protocol="imap")
        self._go_blind(direction, unforwarded)

    def _go_blind(self, direction: str = "", unforwarded: bytes = b"") -> None:
        self.blind = True
        held_client, held_server = self.conn.held()
        if direction == "server":
            held_server += unforwarded
        elif direction == "client":
            held_client += unforwarded
        replies, self._replies = self._replies, []
        if replies or held_server:
            self.client.write(b"".join(replies) + held_server)
        if held_client and self.upstream is not None:
            self.upstream.write(held_client)

    def _flush_replies(self) -> None:
        """Send the proxy's own answers, only between two server responses."""
        if not self.conn.server_at_boundary:
            return
        replies, self._replies = self._replies, []
        self.client.write(b"".join(replies))
        if self._tls_wanted:
            self._tls_wanted = False
            self.proxy.spawn(self._start_client_tls())

    async def _start_client_tls(self) -> None:
        context = self.proxy.server_context
        assert context is not None and self.upstream is not None
        self.upstream.pause_reading()  # nothing may reach the client mid-handshake
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(self.client, self.client_side, context, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.log.info("IMAP client %s: STARTTLS handshake failed (%s)", self.peer, exc)
            self.abort()
            return
        if new is None or self.closed:
            self.abort()
            return
        assert isinstance(new, asyncio.Transport)
        self.client = new
        new.set_write_buffer_limits(_HIGH_WATER, _LOW_WATER)
        self.conn.tls_started()
        self.upstream.resume_reading()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, MessageFetched):
                metrics.inc("messages_relayed_total", protocol="imap")
                if self.member is not None:
                    kind = "imap-fetch" if event.kind == "full" else "imap-headers"
                    self._capture(event.payload, kind)
                else:
                    event.payload.discard()
            elif isinstance(event, Appended):
                metrics.inc("messages_relayed_total", protocol="imap")
                if self.member is not None and not event.drafts:
                    self._capture(event.payload, "imap-append")
                else:
                    event.payload.discard()
            elif isinstance(event, LoggedIn):
                self.member = self.proxy.settings.capture_login(event.login)
                self.conn.keep_bodies = self.member is not None
                self.log.info("IMAP %s signed in from %s (%s)", event.login or "(unknown identity)",
                         self.peer, "capturing" if self.member else "not a member: relay only")
                self._signed_in()
            elif isinstance(event, CompressionStarted):
                self.log.info("IMAP session from %s turned on COMPRESS; relaying blindly", self.peer)
                self._go_blind()
                return

    def _signed_in(self) -> None:
        """Hand the member's credentials to `on_login` (the history sync), then forget them."""
        signin, self._signin = self._signin, None
        if signin is None or self.member is None or self.proxy.on_login is None:
            return
        credentials = credentials_from_client(bytes(signin))
        if credentials is not None:
            try:
                self.proxy.on_login(self.member, *credentials)
            except Exception:  # the sync must never hurt the session
                self.log.exception("IMAP on_login hook failed for %s", self.member)

    def _capture(self, payload: Payload, source: str) -> None:
        member = self.member
        assert member is not None
        if payload.spilled:
            self._capture_spilled(payload, member, source)
            return
        self._hand_over(payload.read(), member, source)
        payload.discard()

    def _capture_spilled(self, payload: Payload, member: str, source: str) -> None:
        # The file goes to capture as it is: a large message is never read back into memory.
        try:
            self.proxy.capture.received_file(payload.take_file(), payload.size, member, source)
        except Exception:  # capture must never stop the mail
            self.log.exception("IMAP capture failed for %s", member)
            metrics.inc("capture_failures_total", protocol="imap")
        finally:
            payload.discard()

    def _hand_over(self, raw: bytes, member: str, source: str) -> None:
        try:
            self.proxy.capture.received(raw, member, source)
        except Exception:  # capture must never stop the mail
            self.log.exception("IMAP capture failed for %s", member)
            metrics.inc("capture_failures_total", protocol="imap")
            return

    # -- flow control and shutdown --------------------------------------------------------

    def pause_upstream(self, pause: bool) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            if pause:
                self.upstream.pause_reading()
            else:
                self.upstream.resume_reading()

    def pause_client(self, pause: bool) -> None:
        if not self.client.is_closing():
            if pause:
                self.client.pause_reading()
            else:
                self.client.resume_reading()

    def stop_when_quiet(self) -> None:
        self._stop_when_quiet = True
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        if self.upstream is None or (not self.blind and self.conn.quiescent):
            self.shutdown("relayproxy is shutting down")

    def shutdown(self, reason: str, force: bool = False) -> None:
        """Say ``* BYE`` when that interrupts nothing, and close both sides."""
        if self.closed:
            return
        if not self.blind and self.conn.server_at_boundary:
            self.client.write(b"* BYE [UNAVAILABLE] " + reason.encode() + b"\r\n")
        self._close()

    def _close(self) -> None:
        self.closed = True
        self.client.close()
        if self.upstream is not None:
            self.upstream.close()

    def abort(self) -> None:
        self.closed = True
        self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()
        self.proxy.session_closed(self)

    def client_lost(self) -> None:
        self.closed = True
        if self.upstream is not None:
            self.upstream.close()
        self.proxy.session_closed(self)

    def upstream_lost(self) -> None:
        if self.upstream is None:
            return  # during setup: _open reports it
        if not self.closed:
            if not self.blind and not self.conn.bye_seen and self.conn.server_at_boundary:
                self.client.write(b"* BYE [UNAVAILABLE] The mail server closed the connection\r\n")
            self.closed = True
            self.client.close()
