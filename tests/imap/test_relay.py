"""The IMAP proxy between real peers: Dovecot upstream, imaplib and mbsync as clients.

One session-scoped Dovecot serves every test; each test has its own user and mailbox.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from relayproxy import metrics
from relayproxy.capture import MemoryCapture
from relayproxy.imap import parser as parser_module
from relayproxy.imap.relay import ImapProxy
from tests.imap.messages import message, sized_message
from tests.imap.peers import maildir_messages, mbsync_config, proxy_settings, run_mbsync_async
from tests.peers.dovecot import Dovecot
from tests.peers.ports import refused_port

ProxyFactory = Callable[..., Awaitable[ImapProxy]]


@pytest.fixture
async def make_proxy(dovecot: Dovecot) -> AsyncIterator[ProxyFactory]:
    proxies: list[ImapProxy] = []

    async def make(
        security: str = "tls", *, tls: bool = True, members: tuple[str, ...] = (),
        capture: MemoryCapture | None = None, upstream: str | None = None, **kwargs: object,
    ) -> ImapProxy:
        port = {"tls": dovecot.tls_port, "starttls": dovecot.port, "none": dovecot.port}[security]
        settings = proxy_settings(
            upstream or f"localhost:{port}", security,
            cert=dovecot.certs.cert if tls else None, key=dovecot.certs.key if tls else None,
            ca=dovecot.ca, members=members, listen_tls=tls,
        )
        proxy = ImapProxy(settings, capture or MemoryCapture(), **kwargs)  # type: ignore[arg-type]
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()


def client_context(dovecot: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(dovecot.ca))


def seeded_user(dovecot: Dovecot, count: int = 3, **kwargs: int) -> tuple[str, str, list[bytes]]:
    login, password = dovecot.new_user()
    messages = [message(i, to=login, **kwargs) for i in range(count)]
    dovecot.append(login, messages)
    return login, password, messages


async def test_imaplib_over_starttls_captures_fetches_and_appends(
    dovecot: Dovecot, make_proxy: ProxyFactory
) -> None:
    login, password, messages = seeded_user(dovecot)
    capture = MemoryCapture()
    proxy = await make_proxy("tls", members=(login,), capture=capture)

    def session() -> dict[str, object]:
        seen: dict[str, object] = {}
        c = imaplib.IMAP4("127.0.0.1", proxy.port)
        seen["before"] = c.capabilities
        c.starttls(ssl_context=client_context(dovecot))
        seen["after_tls"] = c.capabilities
        typ, data = c.login(login, password)
        seen["login_caps"] = data
        c.select("INBOX")
        typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
        seen["bodies"] = [d[1] for d in data if isinstance(d, tuple)]
        c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (FROM TO DATE)])")
        c.append("Sent", "(\\Seen)", None, message(50, to="zoe@initech.se"))
        c.append("Drafts", None, None, message(51))
        typ, data = c.capability()
        seen["caps"] = data[0]
        c.logout()
        return seen

    seen = await asyncio.to_thread(session)
    assert "STARTTLS" in seen["before"]  # type: ignore[operator]
    assert "STARTTLS" not in seen["after_tls"]  # type: ignore[operator]
    assert seen["bodies"] == messages  # byte for byte
    assert b"COMPRESS" not in seen["caps"]  # type: ignore[operator]
    assert b"IDLE" in seen["caps"]  # type: ignore[operator]
    direct = dovecot.imap(login)
    assert b"COMPRESS=DEFLATE" in direct.capability()[1][0]  # Dovecot does offer it
    direct.logout()
    sources = [(m.source, m.member) for m in capture.messages]
    expected = [("imap-fetch", login)] * 3 + [("imap-headers", login), ("imap-append", login)]
    assert sources == expected  # the Drafts APPEND is not captured
    assert [m.raw for m in capture.messages[:3]] == messages
    assert capture.messages[4].raw == message(50, to="zoe@initech.se")


async def test_mbsync_through_the_proxy_matches_a_direct_sync(
    dovecot: Dovecot, make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    login, password, messages = seeded_user(dovecot, count=25, size=6000)
    dovecot.append(login, [sized_message(99, 400_000, to=login)])  # a literal over the threshold
    capture = MemoryCapture()
    proxy = await make_proxy("tls", members=(login,), capture=capture, spill_threshold=100_000)
    ca, user = dovecot.ca, (login, password)
    direct = mbsync_config(tmp_path / "direct", dovecot.tls_port, *user, "IMAPS", ca)
    implicit = mbsync_config(tmp_path / "implicit", proxy.tls_port or 0, *user, "IMAPS", ca)
    starttls = mbsync_config(tmp_path / "starttls", proxy.port or 0, *user, "STARTTLS", ca)
    for config in (direct, implicit, starttls):
        await run_mbsync_async(config)
    expected = maildir_messages(tmp_path / "direct")
    assert len(expected) == 26
    assert maildir_messages(tmp_path / "implicit") == expected
    assert maildir_messages(tmp_path / "starttls") == expected
    fetched = [m.raw for m in capture.messages if m.source == "imap-fetch"]
    assert sorted(fetched) == sorted(2 * (messages + [sized_message(99, 400_000, to=login)]))


async def test_idle_pushes_a_new_message_through_the_proxy(
    dovecot: Dovecot, make_proxy: ProxyFactory
) -> None:
    login, password, _ = seeded_user(dovecot, count=1)
    proxy = await make_proxy("starttls", tls=False)  # upstream STARTTLS done by the proxy

    def session() -> tuple[bytes, tuple[str, ...]]:
        c = imaplib.IMAP4("127.0.0.1", proxy.port)
        caps = c.capabilities
        c.login(login, password)
        c.select("INBOX")
        tag = c._new_tag()  # type: ignore[attr-defined]
        c.send(tag + b" IDLE\r\n")
        assert c.readline().startswith(b"+")
        dovecot.deliver(login, message(7, to=login))
        pushed = c.readline()
        c.send(b"DONE\r\n")
        while not c.readline().startswith(tag):
            pass
        c.logout()
        return pushed, caps

    pushed, caps = await asyncio.to_thread(session)
    assert pushed == b"* 2 EXISTS\r\n"
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps  # no [tls], loopback client


async def test_a_parser_failure_leaves_the_session_working(
    dovecot: Dovecot, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    login, password, messages = seeded_user(dovecot, count=2)
    capture = MemoryCapture()
    proxy = await make_proxy("none", tls=False, members=(login,), capture=capture)
    before = metrics.value("parser_fallbacks_total", protocol="imap")

    def broken(self: object, fetch: object, *args: object) -> None:
        raise parser_module.ImapSyntaxError("forced failure")

    monkeypatch.setattr(parser_module._Interpreter, "_fetch_segment", broken)

    def session() -> list[bytes]:
        c = imaplib.IMAP4("127.0.0.1", proxy.port)
        c.login(login, password)
        c.select("INBOX")
        _, data = c.fetch("1:2", "(BODY.PEEK[])")
        bodies = [d[1] for d in data if isinstance(d, tuple)]
        c.noop()
        c.logout()
        return bodies

    assert await asyncio.to_thread(session) == messages
    assert metrics.value("parser_fallbacks_total", protocol="imap") == before + 1
    assert capture.messages == []


async def test_unreachable_upstream_says_bye_and_closes(make_proxy: ProxyFactory) -> None:
    with refused_port() as closed_port:
        proxy = await make_proxy("none", tls=False, upstream=f"127.0.0.1:{closed_port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        greeting = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert greeting.startswith(b"* BYE [UNAVAILABLE] ")
    assert b"refused" in greeting and greeting.endswith(b"\r\n")


async def test_stop_says_bye_to_quiet_sessions(dovecot: Dovecot, make_proxy: ProxyFactory) -> None:
    login, password = dovecot.new_user()
    proxy = await make_proxy("none", tls=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert (await reader.readline()).startswith(b"* OK")
    writer.write(b"a LOGIN " + login.encode() + b" " + password.encode() + b"\r\n")
    while not (await reader.readline()).startswith(b"a "):
        pass
    await asyncio.wait_for(proxy.stop(5), 10)
    rest = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert rest == b"* BYE [UNAVAILABLE] relayproxy is shutting down\r\n"


async def test_an_envelope_fetch_is_captured_as_headers_that_the_graph_reads(
    dovecot: Dovecot, make_proxy: ProxyFactory
) -> None:
    from relayproxy.graph.mail import parse_headers

    login, password, messages = seeded_user(dovecot, count=2)
    capture = MemoryCapture()
    proxy = await make_proxy("none", tls=False, members=(login,), capture=capture)

    def session() -> None:
        c = imaplib.IMAP4("127.0.0.1", proxy.port)
        c.login(login, password)
        c.select("INBOX", readonly=True)
        typ, _ = c.uid("FETCH", "1:*", "(FLAGS ENVELOPE)")
        assert typ == "OK"
        c.logout()

    await asyncio.to_thread(session)
    captured = [m for m in capture.messages if m.source == "imap-headers"]
    assert len(captured) == 2
    seen = {mail.key: mail for mail in (parse_headers(m.raw) for m in captured)}
    for original in messages:
        real = parse_headers(original)
        mail = seen[real.key]  # the same Message-ID: the full message will complete this record
        assert (mail.sender, mail.to, mail.date, mail.subject) == (real.sender, real.to, real.date, real.subject)


async def test_cram_md5_sign_in_is_relayed_and_names_the_member(dovecot: Dovecot, make_proxy: ProxyFactory) -> None:
    login, password, messages = seeded_user(dovecot, count=1)
    capture = MemoryCapture()
    proxy = await make_proxy("tls", members=(login,), capture=capture)

    def session() -> list[bytes]:
        c = imaplib.IMAP4("127.0.0.1", proxy.port)
        c.starttls(ssl_context=client_context(dovecot))
        assert "AUTH=CRAM-MD5" in c.capabilities  # Dovecot's, passed on
        c.login_cram_md5(login, password)  # the proxy never sees the password, only the login
        c.select("INBOX")
        _, data = c.fetch("1", "(BODY.PEEK[])")
        c.logout()
        return [d[1] for d in data if isinstance(d, tuple)]

    assert await asyncio.to_thread(session) == messages
    assert [(m.source, m.member) for m in capture.messages] == [("imap-fetch", login)]
