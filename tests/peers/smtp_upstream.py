"""A real upstream submission server for tests: aiosmtpd with AUTH, TLS, refusals and SIZE.

`smtp_upstream` is a factory fixture: ``server = await smtp_upstream(security="starttls",
refuse={"nobody@example.net"})`` starts an aiosmtpd server on a free loopback port in the
test's event loop and returns an `UpstreamServer` that records everything it accepted:
`server.messages` (envelope, the exact DATA bytes, who signed in), plus the raw MAIL/RCPT
argument lines it saw. It signs in the users of its `users` dict with PLAIN and LOGIN and takes
XOAUTH2/OAUTHBEARER tokens of the form ``token-for-<user>``, of any length (and CRAM-MD5 with
`cram_md5=True`). Like a real
submission server it requires AUTH before MAIL, and over "starttls" it requires STARTTLS first.

Options: `security` "none" | "starttls" | "tls" (implicit), `refuse` recipients answered with
`REFUSAL` (550), `defer` recipients answered with `DEFERRAL` (451), `size` (SIZE limit),
`data_reply` (answer every DATA with this instead of 250), `line_limit` (DATA line length),
`extra_ehlo` (keywords added to EHLO, default DSN ENHANCEDSTATUSCODES CHUNKING PIPELINING).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import ssl
from base64 import b64decode
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.peers.certs import Certs

REFUSAL = "550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"
DEFERRAL = "451 4.7.1 <{address}>: Recipient address rejected: Greylisted, try again later"
USERS = {"alice@example.com": "alice-pw", "mallory@elsewhere.test": "mallory-pw"}


@dataclass
class ReceivedMessage:
    mail_from: str
    recipients: list[str]
    data: bytes
    login: str | None
    mail_args: str
    rcpt_args: list[str]


@dataclass
class UpstreamServer:
    host: str
    port: int
    security: str
    users: dict[str, str]
    messages: list[ReceivedMessage] = field(default_factory=list)
    mail_args: list[str] = field(default_factory=list)
    rcpt_args: list[str] = field(default_factory=list)
    ehlo_names: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    sessions: set[UpstreamSMTP] = field(default_factory=set)
    server: asyncio.Server | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until `count` messages have arrived."""
        async def enough() -> None:
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.messages

    def drop_connections(self) -> None:
        """Cut every open session, as a crashing server would."""
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.abort()  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.drop_connections()
            await self.server.wait_closed()


class UpstreamHandler:
    def __init__(self, upstream: UpstreamServer, data_reply: str | None) -> None:
        self.upstream = upstream
        self.data_reply = data_reply

    async def handle_EHLO(
        self, server: UpstreamSMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self.upstream.ehlo_names.append(hostname)
        last = responses.pop()  # "250 HELP"
        responses.extend(f"250-{keyword}" for keyword in server.extra_ehlo)
        responses.append(last)
        return responses

    async def handle_DATA(self, server: UpstreamSMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        assert envelope.original_content is not None
        data = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else data
        self.upstream.messages.append(
            ReceivedMessage(
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                envelope.original_content,
                login,
                server.current_mail_args,
                list(server.current_rcpt_args),
            )
        )
        self.upstream.arrived.set()
        return f"250 2.0.0 Ok: queued as Q{len(self.upstream.messages)}"

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        # RFC 2195: a challenge, then "<user> <hex HMAC-MD5 of it keyed with the password>".
        challenge = f"<{secrets.token_hex(8)}@upstream.test>".encode()
        got = await server.challenge_auth(challenge)  # sent base64-encoded, returned decoded
        if isinstance(got, bytes):
            user, _, digest = got.decode(errors="replace").rpartition(" ")
            password = self.upstream.users.get(user)
            if password is not None and hmac.compare_digest(
                digest, hmac.new(password.encode(), challenge, "md5").hexdigest()
            ):
                self.upstream.logins.append(user)
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Error: authentication failed")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._oauth(server, args, xoauth2=True)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._oauth(server, args, xoauth2=False)

    async def _oauth(self, server: SMTP, args: list[str], *, xoauth2: bool) -> AuthResult:
        if len(args) == 2:
            response = b64decode(args[1]) if args[1] != "=" else b""
        else:
            got = await server.challenge_auth("", encode_to_b64=False)  # returns it decoded
            if not isinstance(got, bytes):
                return AuthResult(success=False, handled=False)
            response = got
        text = response.decode()
        fields = dict(p.partition("=")[::2] for p in text.split("\x01") if "=" in p)
        user = fields.get("user") or next(
            (f[2:] for f in text.split("\x01")[0].split(",") if f.startswith("a=")), ""
        )
        token = fields.get("auth", "").removeprefix("Bearer ")
        if user in self.upstream.users and token.startswith(f"token-for-{user}"):
            self.upstream.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        # XOAUTH2 failure: a 334 with a JSON error, the client answers an empty line, then 535.
        if xoauth2:
            await server.challenge_auth("eyJzdGF0dXMiOiI0MDEifQ==", encode_to_b64=False)
        failed = "535 5.7.8 Error: authentication failed"
        return AuthResult(success=False, handled=False, message=failed)


class UpstreamSMTP(SMTP):
    """aiosmtpd with MAIL/RCPT that record their raw arguments and accept DSN parameters."""

    def __init__(self, upstream: UpstreamServer, *, refuse: set[str], defer: set[str],
                 line_limit: int, extra_ehlo: Sequence[str], **kwargs: Any) -> None:
        self.line_length_limit = line_limit
        super().__init__(**kwargs)
        self.command_size_limits = _Limits()
        self.upstream = upstream
        self.refuse = {a.lower() for a in refuse}
        self.defer = {a.lower() for a in defer}
        self.extra_ehlo = list(extra_ehlo)
        self.current_mail_args = ""
        self.current_rcpt_args: list[str] = []

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        # Room for long OAuth tokens (and for long DATA lines when line_limit says so).
        reader._limit = max(1 << 17, self.line_length_limit)  # type: ignore[attr-defined]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.upstream.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.upstream.sessions.discard(self)
        super().connection_lost(error)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.session is not None and self.envelope is not None
        if not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return
        if not arg or not arg.upper().startswith("FROM:"):
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        address, params = _split(arg[5:])
        for param in params:
            if param.upper().startswith("SIZE=") and self.data_size_limit:
                if int(param[5:]) > self.data_size_limit:
                    await self.push("552 5.3.4 Message size exceeds fixed limit")
                    return
        self.upstream.mail_args.append(arg)
        self.current_mail_args = arg
        self.current_rcpt_args = []
        self.envelope.mail_from = address
        await self.push("250 2.1.0 Ok")

    async def smtp_RCPT(self, arg: str | None) -> None:
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if not arg or not arg.upper().startswith("TO:"):
            await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        address, _ = _split(arg[3:])
        self.upstream.rcpt_args.append(arg)
        if address.lower() in self.refuse:
            await self.push(REFUSAL.format(address=address))
            return
        if address.lower() in self.defer:
            await self.push(DEFERRAL.format(address=address))
            return
        self.current_rcpt_args.append(arg)
        self.envelope.rcpt_tos.append(address)
        await self.push("250 2.1.5 Ok")

    async def smtp_DATA(self, arg: str | None) -> None:
        assert self.envelope is not None
        if self.envelope.mail_from is not None and not self.envelope.rcpt_tos:
            await self.push("554 5.5.1 Error: no valid recipients")
            return
        await super().smtp_DATA(arg)


class _Limits(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 1 << 17 if key == "AUTH" else 1024


def _split(text: str) -> tuple[str, list[str]]:
    text = text.strip()
    if text.startswith("<"):
        address, _, rest = text[1:].partition(">")
    else:
        address, _, rest = text.partition(" ")
    return address, rest.split()


StartUpstream = Callable[..., Awaitable[UpstreamServer]]


@pytest_asyncio.fixture
async def smtp_upstream(certs: Certs) -> AsyncIterator[StartUpstream]:
    started: list[UpstreamServer] = []

    async def start(
        *,
        security: str = "none",
        users: dict[str, str] | None = None,
        refuse: Sequence[str] = (),
        defer: Sequence[str] = (),
        size: int | None = None,
        data_reply: str | None = None,
        line_limit: int = 1001,
        extra_ehlo: Sequence[str] = ("DSN", "ENHANCEDSTATUSCODES", "CHUNKING", "PIPELINING"),
        cram_md5: bool = False,
    ) -> UpstreamServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert, certs.key)
        upstream = UpstreamServer("127.0.0.1", 0, security, dict(USERS if users is None else users))
        handler = UpstreamHandler(upstream, data_reply)

        def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                          data: Any) -> AuthResult:
            if isinstance(data, LoginPassword):
                login, password = data.login.decode(), data.password.decode()
                if upstream.users.get(login) == password:
                    upstream.logins.append(login)
                    return AuthResult(success=True, auth_data=data)
            return AuthResult(success=False, handled=False)

        def factory() -> UpstreamSMTP:
            return UpstreamSMTP(
                upstream,
                refuse=set(refuse),
                defer=set(defer),
                line_limit=line_limit,
                extra_ehlo=extra_ehlo,
                handler=handler,
                data_size_limit=size,
                enable_SMTPUTF8=True,
                hostname="upstream.test",
                tls_context=context if security == "starttls" else None,
                require_starttls=security == "starttls",
                auth_require_tls=security == "starttls",
                authenticator=authenticator,
                auth_exclude_mechanism=() if cram_md5 else ("CRAM-MD5",),
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", 0, ssl=context if security == "tls" else None
        )
        upstream.server = server
        upstream.port = server.sockets[0].getsockname()[1]
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.close()
