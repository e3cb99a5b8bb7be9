"""One client connection: aiosmtpd's SMTP state machine, with every command relayed upstream.

Theory of operation: `RelaySession` is aiosmtpd's `SMTP` protocol (one instance per client
connection) with the mail commands replaced. aiosmtpd still owns what it does well: the
greeting and command loop, line limits and garbage handling ("500 ... not recognized", the
bogus-command budget), STARTTLS on the client side (including discarding bytes pipelined before
the handshake, RFC 3207 §4.2 / CVE-2014-3556), timeouts, and scrubbing AUTH lines from its logs.
Its handler hooks are not enough for a transparent relay: its MAIL/RCPT answer 555 to
parameters it does not know (DSN's NOTIFY, ORCPT, RET, ENVID) before any hook runs, and its DATA
enforces 1,000-octet lines and buffers the whole body. So MAIL, RCPT, DATA, RSET, AUTH, HELO,
EHLO and the small commands are `smtp_*` methods here, each forwarding the client's own line to
the session's `Upstream` and answering with upstream's own reply (see `replies`).

A message goes like this (DESIGN.md, data flow):

    DATA  ->  upstream 354 relayed  ->  body bytes streamed upstream as they arrive
    client's "." ->  capture.pending(raw)  ->  "." upstream  ->  upstream's verdict
    2xx -> capture.accepted(accepted recipients) -> client hears 2xx;   else capture.refused

The part after the client's "." runs as its own task, shielded from the client: a client that
hangs up after its final dot does not stop the proxy from learning the verdict and recording it.
A client that hangs up before it gets nothing captured and nothing delivered (upstream never
sees a final dot).

Sign-in: the client's AUTH exchange is replayed to upstream line by line (RFC 4954) and the
client hears upstream's success or failure; `relayproxy.sasl.identity` reads the login on the side, and
`settings.capture_login` decides whether this session's mail is captured and for whom.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, AnyStr, TypeVar

from aiosmtpd.smtp import SMTP, login_always_fail

from relayproxy import metrics, sasl
from relayproxy.logs import SessionLog, new_session_id
from relayproxy.smtp import replies
from relayproxy.smtp.body import BodyScanner, unstuff
from relayproxy.smtp.replies import Reply
from relayproxy.smtp.upstream import Upstream, UpstreamLost, UpstreamUnavailable

if TYPE_CHECKING:
    from relayproxy.smtp.server import SmtpProxy

log = logging.getLogger("relayproxy.smtp")

T = TypeVar("T")

# RFC 4954 §4 allows AUTH lines of 12,288 octets; OAuth tokens grow, so allow more. This is also
# the reader's line limit, which aiosmtpd answers with "500 Command line too long".
AUTH_LINE_LIMIT = 64 * 1024
# RFC 5321 §4.5.3.1.4 gives 512 octets, and each extension adds room (RFC 1870, 3461, 6531).
MAIL_LINE_LIMIT = 2048
# Read the body in chunks of this size.
READ_CHUNK = 64 * 1024
# Without an upstream SIZE, keep at most this much of a message for capture.
CAPTURE_LIMIT = 64 * 1024 * 1024
# A capture call that takes longer than this is given up on (and counted): mail goes first.
CAPTURE_TIMEOUT = 10.0

_ADDRESS = re.compile(r"<([^>]*)>")


class _NoHooks:
    """aiosmtpd wants a handler; every command is handled by the session itself."""


_NO_HOOKS = _NoHooks()


class RelaySession(SMTP):
    """aiosmtpd's SMTP protocol for one client, relaying each command to its own upstream."""

    # The StreamReader's limit (aiosmtpd builds the reader from this). Command lines stay
    # limited by `command_size_limits`; DATA does not read lines at all.
    line_length_limit = AUTH_LINE_LIMIT

    # The smtp_* command names, found once per class rather than once per connection.
    _command_names: tuple[str, ...] = ()

    def __init__(self, proxy: SmtpProxy, *, implicit_tls: bool) -> None:
        # aiosmtpd's SMTP.__init__ introspects the class and the handler (inspect.getmembers,
        # dir) on every connection, which costs about as much as relaying a small message.
        # This sets the same attributes (aiosmtpd 1.4.6; test_session_setup checks parity)
        # with the per-class work done once. Arguments as aiosmtpd would get them: no hooks,
        # no size limit (upstream's), arguments decoded with surrogateescape (bytes survive),
        # no built-in AUTH (relayed, see smtp_AUTH).
        loop = proxy.loop
        self.log = SessionLog(log, new_session_id("smtp"), lambda: getattr(self, "member", None))
        self.__ident__ = "relayproxy ESMTP"
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=loop,
        )
        self.event_handler = _NO_HOOKS
        self.data_size_limit = None
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.hostname = proxy.hostname
        self.tls_context = None if implicit_tls else proxy.server_tls
        self.require_starttls = False
        self._timeout_duration = proxy.idle_timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = False  # the proxy's own policy, see _auth_allowed
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        self._auth_methods = {}
        self._handle_hooks = {}
        self._ehlo_hook_ver = None
        self._enforce_call_limit = False
        cls = type(self)
        if not cls._command_names:
            cls._command_names = tuple(n[5:] for n in dir(cls) if n.startswith("smtp_"))
        self._smtp_methods = {
            name: self._tracked(getattr(self, "smtp_" + name)) for name in cls._command_names
        }
        self.proxy = proxy
        self.implicit_tls = implicit_tls
        self.upstream: Upstream | None = None
        self.member: str | None = None  # whose sent mail this session's messages are
        self.authenticated = False
        self.busy = False  # a command is being handled
        self.draining = False
        self._commit: asyncio.Task[Reply] | None = None
        self._finished = False
        # Per instance: aiosmtpd's class-level dict is shared and grown by its EHLO.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit,
            {"MAIL": MAIL_LINE_LIMIT, "RCPT": MAIL_LINE_LIMIT, "AUTH": AUTH_LINE_LIMIT},
        )

    # ----------------------------------------------------------------- connection life

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None and self.transport is None
        super().connection_made(transport)
        if first:
            self.proxy.sessions.add(self)
            metrics.inc("connections_total", protocol="smtp")
            metrics.inc("connections_open", protocol="smtp")

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self._commit is not None and not self._commit.done():
            # The verdict on a message whose final dot went up is still to come: let it land.
            self._commit.add_done_callback(lambda _: self._finish())
        else:
            self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.upstream is not None:
            self.upstream.close()
        metrics.inc("connections_open", -1, protocol="smtp")
        self.proxy.forget(self)

    async def _handle_client(self) -> None:
        settings = self.proxy.settings
        try:
            self.upstream = await Upstream.connect(
                settings.smtp.upstream,
                settings.smtp.upstream_security,
                self.proxy.upstream_tls,
                local_hostname=self.proxy.hostname,
                timeout=self.proxy.timeout,
            )
        except UpstreamUnavailable as exc:
            upstream = str(settings.smtp.upstream or "(none)")
            self.log.warning("SMTP upstream %s unreachable: %s", upstream, exc)
            await self.reply(replies.unreachable(upstream, str(exc)))
            self._close()
            return
        if self.transport is None or self.transport.is_closing():
            self.upstream.close()  # the client left, or stop() came, while connecting
            return
        await super()._handle_client()

    def _tracked(
        self, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Coroutine[Any, Any, None]]:
        """Wrap a command so shutdown can tell busy sessions from idle ones."""

        async def command(arg: str | None) -> None:
            self.busy = True
            try:
                await method(arg)
            finally:
                self.busy = False
            if self.draining and not self.in_transaction:
                self.shut_down()

        return command

    @property
    def in_transaction(self) -> bool:
        """Between an accepted MAIL and the end of its DATA (or RSET)."""
        return self.envelope is not None and self.envelope.mail_from is not None

    def shut_down(self) -> None:
        """Say 421 (RFC 5321 §3.8) and close; used on stop()."""
        if self.transport is not None and not self.transport.is_closing():
            self._writer.write(replies.SHUTTING_DOWN.render())
            self._close()

    def abort(self) -> None:
        """Stop now, even mid-transaction (after stop()'s grace period)."""
        if self._commit is not None and not self._commit.done():
            self._commit.cancel()
        self.shut_down()
        if self.transport is None:
            self._finish()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # ----------------------------------------------------------------- replies

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd's own replies (syntax errors, STARTTLS, timeouts...) come through here.
        data = status if isinstance(status, bytes) else status.encode("utf-8", "surrogateescape")
        self._writer.write(data + b"\r\n")
        await self._writer.drain()

    async def reply(self, reply: Reply) -> None:
        """Send a reply; 421 also ends the session (RFC 5321 §3.8)."""
        self._writer.write(reply.render())
        await self._writer.drain()
        if reply.code == 421:
            self._close()

    async def _relay(self, line: bytes, timeout: float | None = None) -> Reply | None:
        """Forward one command line; the reply to give, or None if the session is over."""
        if self.upstream is None or not self.upstream.connected:
            await self.reply(replies.UPSTREAM_LOST)
            return None
        try:
            return await self.upstream.command(line, timeout)
        except ValueError:
            return replies.CONTROL_CHARACTERS
        except UpstreamLost as exc:
            self.log.warning("SMTP upstream lost (client %r): %s", self.session_peer, exc)
            await self.reply(replies.UPSTREAM_LOST)
            return None

    @property
    def session_peer(self) -> object:
        return self.session.peer if self.session is not None else None

    # ----------------------------------------------------------------- greeting commands

    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 Syntax: HELO hostname")
            return
        reply = await self._relay(b"HELO " + _raw(hostname))
        if reply is None:
            return
        if reply.ok:
            self._set_rset_state()
            assert self.session is not None
            self.session.extended_smtp = False
            self.session.host_name = hostname
        await self.reply(reply)

    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 Syntax: EHLO hostname")
            return
        reply = await self._relay(b"EHLO " + _raw(hostname))
        if reply is None:
            return
        if reply.ok:
            self._set_rset_state()
            assert self.session is not None
            self.session.extended_smtp = True
            self.session.host_name = hostname
            reply = replies.ehlo_reply(
                reply,
                starttls=self.tls_context is not None and not self.encrypted,
                auth=self._offered_mechanisms() if self._auth_allowed() else [],
            )
        await self.reply(reply)

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if self.authenticated:
            await self.reply(replies.STARTTLS_AFTER_AUTH)
            return
        if self.encrypted:
            await self.push("503 5.5.1 TLS already active")
            return
        # aiosmtpd: 220, handshake, then a fresh session; the reader buffer is cleared.
        await super().smtp_STARTTLS(arg)

    @property
    def encrypted(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    async def smtp_NOOP(self, arg: str | None) -> None:
        await self._simple(b"NOOP", arg)

    async def smtp_HELP(self, arg: str | None) -> None:
        await self._simple(b"HELP", arg)

    async def smtp_VRFY(self, arg: str | None) -> None:
        await self._simple(b"VRFY", arg)

    async def smtp_EXPN(self, arg: str | None) -> None:
        await self._simple(b"EXPN", arg)

    async def _simple(self, verb: bytes, arg: str | None) -> None:
        reply = await self._relay(verb + b" " + _raw(arg) if arg else verb)
        if reply is not None:
            await self.reply(reply)

    async def smtp_RSET(self, arg: str | None) -> None:
        reply = await self._relay(b"RSET " + _raw(arg) if arg else b"RSET")
        if reply is None:
            return
        if reply.ok:
            self._set_rset_state()
        await self.reply(reply)

    async def smtp_QUIT(self, arg: str | None) -> None:
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        # Answer at once; upstream gets its QUIT on the way out (no need to wait for it).
        await self.reply(replies.BYE)
        if self.upstream is not None:
            self.upstream.quit()
        self._close()

    # ----------------------------------------------------------------- AUTH (RFC 4954)

    def _auth_allowed(self) -> bool:
        """DESIGN.md: plaintext credentials only from loopback clients; others need TLS first."""
        if self.encrypted:
            return True
        peer = self.session.peer if self.session is not None else None
        host = peer[0] if isinstance(peer, tuple) and peer else ""
        return self.proxy.is_local(str(host))

    def _offered_mechanisms(self) -> list[str]:
        if self.upstream is None:
            return []
        offered = self.upstream.extensions.get("AUTH", "").upper().split()
        return [m for m in offered if m in sasl.MECHANISMS]

    async def smtp_AUTH(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self.session.extended_smtp:
            await self.push("500 Error: command 'AUTH' not recognized")
            return
        if not self._auth_allowed():
            needs_tls = self.tls_context is not None
            await self.reply(replies.AUTH_NEEDS_TLS if needs_tls else replies.AUTH_NEEDS_ENCRYPTION)
            return
        if self.authenticated:
            await self.reply(replies.AUTH_ALREADY)
            return
        if self.in_transaction:
            await self.reply(replies.AUTH_IN_TRANSACTION)
            return
        args = (arg or "").split()
        if not 1 <= len(args) <= 2:
            await self.reply(replies.AUTH_SYNTAX)
            return
        mechanism = args[0].upper()
        if mechanism not in self._offered_mechanisms():
            await self.reply(replies.AUTH_UNKNOWN_MECHANISM)
            return
        first = args[1] if len(args) == 2 else None
        # The exchange's lines carry secrets: nothing below logs them.
        reply = await self._relay(b"AUTH " + _raw(" ".join(args)))
        while reply is not None and reply.code == 334:
            await self.reply(reply)  # the challenge, verbatim
            line = await self._read_auth_line()
            if line is None:
                # Too long: cancel the exchange upstream (RFC 4954 §4 "*"), tell the client.
                await self._relay(b"*")
                await self.reply(replies.AUTH_LINE_TOO_LONG)
                return
            if first is None:
                first = line.decode("ascii", errors="replace")
            reply = await self._relay(line)
        if reply is None:
            return
        if reply.code == 235:
            self.authenticated = True
            login = sasl.identity(mechanism, first or "")
            self.member = self.proxy.settings.capture_login(login) if login else None
            self.session.authenticated = True
            self.log.info("SMTP signed in from %r (%s)", self.session_peer,
                          "capturing" if self.member else "not a member: relay only")
        await self.reply(reply)

    async def _read_auth_line(self) -> bytes | None:
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
            while True:  # drop the rest of the overlong line
                try:
                    await self._reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)
            return None
        self._reset_timeout()
        return line.rstrip(b"\r\n")

    # ----------------------------------------------------------------- the mail transaction

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if not arg:
            await self.push("501 Syntax: MAIL FROM:<address>")
            return
        reply = await self._relay(b"MAIL " + _raw(arg))
        if reply is None:
            return
        if reply.ok:
            self._set_rset_state()
            assert self.envelope is not None
            self.envelope.mail_from = _address(arg)
            self.envelope.mail_options = arg.split()[1:]
        await self.reply(reply)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if not arg:
            await self.push("501 Syntax: RCPT TO:<address>")
            return
        reply = await self._relay(b"RCPT " + _raw(arg))
        if reply is None:
            return
        if reply.ok and self.envelope is not None:
            # Only recipients upstream accepted count (DESIGN.md: refused ones received nothing).
            self.envelope.rcpt_tos.append(_address(arg))
            self.envelope.rcpt_options.extend(arg.split()[1:])
        await self.reply(reply)

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        upstream = self.upstream
        reply = await self._relay(b"DATA")
        if reply is None or upstream is None:
            return
        if reply.code != 354:
            await self.reply(reply)
            return
        await self.reply(reply)

        limit = upstream.size_limit
        keep_limit = max(limit or 0, CAPTURE_LIMIT)
        pieces: list[bytes] | None = []  # the stuffed body, kept for capture
        size = 0
        sent = True  # every byte so far reached upstream
        scanner = BodyScanner()
        last = b""  # the body's final piece: it goes up with the final dot, after pending
        while True:
            chunk = await self._reader.read(READ_CHUNK)
            if not chunk:  # the client went away mid-DATA: nothing captured, no final dot
                self._close()
                return
            self._reset_timeout()
            body, after = scanner.feed(chunk)
            if body:
                size += len(body)
                if pieces is not None:
                    if size > keep_limit:
                        pieces = None
                    else:
                        pieces.append(body)
            if after is not None:
                last = body
                if after:
                    # Pipelined commands after the final dot (RFC 2920): hand them back to
                    # aiosmtpd's command loop, which reads from this same buffer.
                    self._reader._buffer[:0] = after  # type: ignore[attr-defined]
                break
            if body and sent:
                try:
                    upstream.write(body)
                    await upstream.drain()
                except UpstreamLost as exc:
                    self.log.warning("SMTP upstream lost during DATA (client %r): %s", self.session_peer, exc)
                    sent = False

        assert self.envelope is not None
        recipients = list(self.envelope.rcpt_tos)
        self._set_post_data_state()
        sent = sent and upstream.connected  # known lost: do not journal what cannot go up
        if not sent:
            too_big = limit is not None and size > limit
            await self.reply(replies.TOO_BIG if too_big else replies.DATA_NOT_SENT)
            return
        raw = None
        if self.member is not None and pieces is not None:
            raw = unstuff(b"".join(pieces))
        commit = self.proxy.spawn(self._deliver(upstream, raw, recipients, last))
        self._commit = commit
        reply = await asyncio.shield(commit)
        await self.reply(reply)

    async def _deliver(
        self, upstream: Upstream, raw: bytes | None, recipients: list[str], last: bytes
    ) -> Reply:
        """Journal, send the final dot, record the verdict: runs on even if the client leaves."""
        capture = self.proxy.capture
        member = self.member
        ticket: int | None = None
        if member is not None:
            if raw is None:
                self.log.warning("SMTP message for %s too large to capture; relayed only", member)
                metrics.inc("capture_failures_total", protocol="smtp")
            else:
                ticket = await self._guarded(capture.pending(raw, member, "smtp", recipients))
        resolved = False
        try:
            try:
                reply = await upstream.finish_data(last, self.proxy.data_timeout)
            except UpstreamLost as exc:
                self.log.warning("SMTP upstream lost before confirming a message: %s", exc)
                return replies.DATA_UNCONFIRMED
            if reply.ok:
                self.log.info("SMTP message accepted upstream for %d recipients", len(recipients))
                metrics.inc("messages_relayed_total", protocol="smtp")
                if ticket is not None:
                    await self._guarded(capture.accepted(ticket, recipients))
                resolved = True
            return reply
        finally:
            if ticket is not None and not resolved:
                await self._guarded(capture.refused(ticket))

    async def _guarded(self, call: Awaitable[T]) -> T | None:
        """Run a capture call; its failure is logged and counted, never passed on to the mail."""
        try:
            async with asyncio.timeout(CAPTURE_TIMEOUT):  # no extra task, unlike wait_for
                return await call
        except Exception:
            self.log.exception("SMTP capture failed; the message is relayed regardless")
            metrics.inc("capture_failures_total", protocol="smtp")
            return None


def _raw(arg: str) -> bytes:
    """The argument's bytes as the client sent them (aiosmtpd decoded with surrogateescape)."""
    return arg.encode("utf-8", "surrogateescape")


def _address(arg: str) -> str:
    """The address in "FROM:<a@b> PARAMS" / "TO:<a@b>", for bookkeeping only."""
    found = _ADDRESS.search(arg)
    if found is not None:
        return found.group(1)
    value = arg.partition(":")[2].strip()
    return value.split()[0] if value else ""

