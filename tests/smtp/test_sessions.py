"""Transcripts over real sockets: sign-in relaying, EHLO, pipelining, bad input, lost peers."""

from __future__ import annotations

import asyncio
import socket
from base64 import b64encode

from relayproxy.capture import MemoryCapture
from tests.peers.certs import Certs
from tests.peers.ports import refused_port
from tests.peers.smtp_upstream import DEFERRAL, StartUpstream
from tests.smtp.conftest import StartProxy, client_tls, until
from tests.smtp.wire import Wire, session


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


def oauth(user: str, *, length: int = 100, bearer: bool = False) -> str:
    token = f"token-for-{user}" + "x" * length
    if bearer:
        return b64(f"n,a={user},\x01host=localhost\x01port=587\x01auth=Bearer {token}\x01\x01")
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01")


async def send_one(wire: Wire, body: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> str:
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(body + b".\r\n")
    return await wire.line()


async def test_auth_login_without_initial_response(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)

    assert await wire.cmd("AUTH LOGIN") == (334, ["VXNlciBOYW1lAA=="])
    assert await wire.cmd(b64("alice@example.com")) == (334, ["UGFzc3dvcmQA"])
    assert await wire.cmd(b64("alice-pw")) == (235, ["2.7.0 Authentication successful"])
    assert (await send_one(wire)).startswith("250 2.0.0 Ok: queued as")
    assert [m.member for m in capture.accepted_messages()] == ["alice@example.com"]


async def test_auth_plain_without_initial_response_and_login_with_one(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False)
    wire = await session(proxy.port)
    assert await wire.cmd("AUTH PLAIN") == (334, [""])
    assert (await wire.cmd(b64("\0alice@example.com\0alice-pw")))[0] == 235

    other = await session(proxy.port)
    assert (await other.cmd(f"AUTH LOGIN {b64('alice@example.com')}"))[0] == 334
    assert (await other.cmd(b64("wrong")))[0] == 535
    assert upstream.logins == ["alice@example.com"]


async def test_xoauth2_with_a_long_token_is_relayed_and_names_the_member(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)

    assert (await wire.cmd(f"AUTH XOAUTH2 {oauth('alice@example.com', length=6000)}"))[0] == 235
    assert (await send_one(wire)).startswith("250")
    assert [m.member for m in capture.accepted_messages()] == ["alice@example.com"]


async def test_oauthbearer_in_a_continuation_line(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)

    assert await wire.cmd("AUTH OAUTHBEARER") == (334, [""])
    assert (await wire.cmd(oauth("alice@example.com", length=3000, bearer=True)))[0] == 235
    assert (await send_one(wire)).startswith("250")
    assert [m.member for m in capture.accepted_messages()] == ["alice@example.com"]


async def test_xoauth2_failure_follows_upstreams_challenge(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False)
    wire = await session(proxy.port)

    assert await wire.cmd(f"AUTH XOAUTH2 {oauth('nobody@example.com')}") == (
        334, ["eyJzdGF0dXMiOiI0MDEifQ=="]
    )
    assert await wire.cmd("") == (535, ["5.7.8 Error: authentication failed"])


async def test_ehlo_mirrors_upstream_less_what_cannot_be_relayed(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream(security="starttls", size=5000)
    proxy = await smtp_proxy(upstream)
    wire = await Wire.open(proxy.port)
    await wire.reply()

    code, lines = await wire.cmd("EHLO client.test")

    assert code == 250
    assert lines[0] == "upstream.test"
    keywords = [line.split()[0] for line in lines[1:]]
    assert keywords == ["SIZE", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES",
                        "PIPELINING", "STARTTLS", "AUTH"]
    assert "SIZE 5000" in lines
    assert upstream.ehlo_names[-1] == "client.test"


async def test_remote_clients_get_auth_only_after_starttls(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, is_local=lambda host: False)
    wire = await Wire.open(proxy.port)
    await wire.reply()
    code, lines = await wire.cmd("EHLO remote.test")
    assert "STARTTLS" in lines and not any(line.startswith("AUTH") for line in lines)
    assert await wire.login("alice@example.com", "alice-pw") == (
        530, ["5.7.0 Must issue a STARTTLS command first"]
    )

    await wire.starttls(client_tls(certs))
    code, lines = await wire.cmd("EHLO remote.test")
    assert "AUTH LOGIN OAUTHBEARER PLAIN XOAUTH2" in lines and "STARTTLS" not in lines
    assert (await wire.login("alice@example.com", "alice-pw"))[0] == 235


async def test_without_tls_remote_clients_cannot_sign_in(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False, is_local=lambda host: False)
    wire = await session(proxy.port)

    assert (await wire.login("alice@example.com", "alice-pw"))[0] == 538
    assert upstream.logins == []


async def test_bytes_pipelined_before_the_tls_handshake_are_discarded(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream)
    wire = await session(proxy.port)

    wire.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.net>\r\n")  # CVE-2014-3556 class
    assert (await wire.reply())[0] == 220
    await wire.writer.start_tls(client_tls(certs), server_hostname="localhost")

    assert await wire.cmd("NOOP") == (250, ["OK"])  # not the reply to the injected RSET
    assert upstream.mail_args == []


async def test_pipelined_transaction_gets_replies_in_order(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream(defer={"later@example.net"})
    proxy = await smtp_proxy(upstream, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")

    wire.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n"
              b"RCPT TO:<later@example.net>\r\nDATA\r\n")
    assert await wire.line() == "250 2.1.0 Ok"
    assert await wire.line() == "250 2.1.5 Ok"
    assert await wire.line() == DEFERRAL.format(address="later@example.net")
    assert (await wire.reply())[0] == 354
    wire.send(b"Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<alice@example.com>\r\n"
              b"RCPT TO:<carol@example.net>\r\nDATA\r\n")
    assert (await wire.line()).startswith("250 2.0.0 Ok: queued")
    assert await wire.line() == "250 2.1.0 Ok"
    assert await wire.line() == "250 2.1.5 Ok"
    assert (await wire.reply())[0] == 354
    wire.send(b"Subject: two\r\n\r\n.\r\nQUIT\r\n")
    assert (await wire.line()).startswith("250")
    assert await wire.line() == "221 2.0.0 Bye"

    one, two = await upstream.wait_for_messages(2)
    assert (one.recipients, one.data) == (["bob@example.net"], b"Subject: one\r\n\r\nbody\r\n")
    assert (two.recipients, two.data) == (["carol@example.net"], b"Subject: two\r\n\r\n")


async def test_long_lines_and_bare_newlines_are_relayed_as_they_are(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream(line_limit=200_000)
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    body = b"Subject: long\r\n\r\n" + b"y" * 150_000 + b"\r\nbare\nLF and \xff bytes\r\n"

    assert (await send_one(wire, body)).startswith("250")

    [received] = await upstream.wait_for_messages(1)
    assert received.data == body
    assert capture.messages[0].raw == body


async def test_garbage_and_overlong_commands_get_errors_and_the_session_goes_on(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False)
    wire = await session(proxy.port)

    assert (await wire.cmd("FROBNICATE now"))[0] == 500
    assert (await wire.cmd(b"\xff\xfe"))[0] == 500
    assert (await wire.cmd("NOOP " + "x" * 3000))[0] == 500
    assert (await wire.cmd("MAIL FROM:<" + "a" * 70_000 + ">"))[0] == 500
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 503  # upstream: need MAIL
    assert (await wire.login("alice@example.com", "alice-pw"))[0] == 235
    assert (await send_one(wire)).startswith("250")


async def test_client_vanishing_mid_data_captures_and_delivers_nothing(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(b"Subject: half\r\n\r\nhalf a message\r\n")
    await wire.writer.drain()
    wire.writer.transport.abort()

    await until(lambda: not proxy.sessions and not upstream.sessions)
    assert capture.messages == []
    assert upstream.messages == []

    other = await session(proxy.port)  # the proxy serves the next client
    await other.login("alice@example.com", "alice-pw")
    assert (await send_one(other)).startswith("250")


async def test_over_size_without_a_size_parameter_gets_upstreams_552(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream(size=1000)
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")

    reply = await send_one(wire, b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 40)

    assert reply.startswith("552")
    assert capture.accepted_messages() == []
    assert (await wire.cmd("NOOP"))[0] == 250


async def test_unreachable_upstream_gets_a_421_greeting(smtp_proxy: StartProxy) -> None:
    with refused_port() as closed_port:
        proxy = await smtp_proxy(f"127.0.0.1:{closed_port}", tls=False)
        wire = await Wire.open(proxy.port)

        code, lines = await wire.reply()

        assert code == 421
        assert lines[0].startswith(f"4.4.1 Cannot reach the mail server 127.0.0.1:{closed_port}")
        assert await wire.closed()
        assert await proxy.probe_upstream() is not None


async def test_upstream_lost_between_commands_gives_421(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250

    upstream.drop_connections()

    code, lines = await wire.cmd("RCPT TO:<bob@example.net>")
    assert code == 421
    assert lines == ["4.4.2 Lost the connection to the mail server; try again later"]
    assert await wire.closed()


async def test_upstream_lost_during_data_gives_451_and_nothing_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(b"Subject: x\r\n\r\nfirst part\r\n")
    await until(lambda: any(s.envelope and s.envelope.mail_from for s in upstream.sessions))

    upstream.drop_connections()
    await until(lambda: not upstream.sessions)
    wire.send(b"second part\r\n" * 1000 + b".\r\n")

    code, _ = await wire.reply()
    assert code in (451, 421)
    assert capture.accepted_messages() == []
    assert upstream.messages == []


async def test_stop_lets_a_transaction_finish_and_says_421_to_idle_sessions(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    idle = await session(proxy.port)
    busy = await session(proxy.port)
    await busy.login("alice@example.com", "alice-pw")
    assert (await busy.cmd("MAIL FROM:<alice@example.com>"))[0] == 250

    stopping = asyncio.create_task(proxy.stop(5.0))
    assert await idle.line() == "421 4.3.2 relayproxy is shutting down; try again later"
    assert (await busy.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await busy.cmd("DATA"))[0] == 354
    busy.send(b"Subject: last\r\n\r\n.\r\n")
    assert (await busy.line()).startswith("250")
    assert (await busy.reply())[0] == 421  # then the session ends
    await asyncio.wait_for(stopping, 5.0)
    assert [m.state for m in capture.messages] == ["accepted"]


async def test_stop_timeout_says_421_to_sessions_still_busy(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    proxy = await smtp_proxy(upstream, tls=False)
    busy = await session(proxy.port)
    await busy.login("alice@example.com", "alice-pw")
    assert (await busy.cmd("MAIL FROM:<alice@example.com>"))[0] == 250

    await proxy.stop(0.05)

    assert (await busy.reply())[0] == 421
    assert not proxy.sessions


class GatedCapture(MemoryCapture):
    """Holds `accepted` until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def accepted(self, ticket: int | None, recipients: object) -> None:
        await self.gate.wait()
        await super().accepted(ticket, list(recipients))  # type: ignore[call-overload]


async def test_capture_marks_accepted_before_the_client_hears_250(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = GatedCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(b"Subject: gated\r\n\r\n.\r\n")

    await upstream.wait_for_messages(1)
    reply = asyncio.create_task(wire.line())
    done, _ = await asyncio.wait([reply], timeout=0.2)
    assert not done and capture.messages[0].state == "pending"

    capture.gate.set()
    assert (await reply).startswith("250")
    assert capture.messages[0].state == "accepted"


async def test_client_leaving_after_its_final_dot_still_gets_the_message_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy
) -> None:
    upstream = await smtp_upstream()
    capture = GatedCapture()  # holds the verdict's recording until the client has gone
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    wire = await session(proxy.port)
    await wire.login("alice@example.com", "alice-pw")
    assert (await wire.cmd("MAIL FROM:<alice@example.com>"))[0] == 250
    assert (await wire.cmd("RCPT TO:<bob@example.net>"))[0] == 250
    assert (await wire.cmd("DATA"))[0] == 354
    wire.send(b"Subject: and gone\r\n\r\n.\r\n")
    await upstream.wait_for_messages(1)
    wire.writer.transport.abort()
    await until(lambda: all(s.transport is None for s in proxy.sessions))

    capture.gate.set()
    await until(lambda: not proxy.sessions)
    assert [m.state for m in capture.messages] == ["accepted"]


async def test_a_port_in_use_is_a_config_error_naming_the_key(certs: Certs) -> None:
    import dataclasses

    import pytest

    from relayproxy.config import ConfigError, HostPort
    from relayproxy.smtp.server import SmtpProxy
    from tests.smtp.conftest import make_settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_settings("127.0.0.1:25", certs, tls=False)
        listen = HostPort("127.0.0.1", port)
        settings = dataclasses.replace(settings, smtp=dataclasses.replace(settings.smtp, listen=listen))
        proxy = SmtpProxy(settings, MemoryCapture())
        with pytest.raises(ConfigError) as error:
            await proxy.start()
    assert error.value.key == "smtp.listen"
    assert f"127.0.0.1:{port}" in str(error.value)
