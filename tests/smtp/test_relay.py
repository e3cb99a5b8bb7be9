"""The proxy between smtplib and a real upstream: exact bytes, exact replies, capture."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl

import pytest

from relayproxy.capture import MemoryCapture
from tests.peers.certs import Certs
from tests.peers.smtp_upstream import REFUSAL, StartUpstream
from tests.smtp.conftest import StartProxy

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"  # a lone dot inside the body: smtplib stuffs it, the proxy must not end there
    b"\xc3\xa4\xc3\xb6\xc3\xbc 8-bit text\r\n"
    b"-- \r\nAlice\r\n"
)


def send(port: int, certs: Certs, *, mode: str, user: str = "alice@example.com",
         password: str = "alice-pw", to: list[str] | None = None, message: bytes = MESSAGE,
         mail_options: list[str] | None = None, rcpt_options: list[str] | None = None) -> dict:
    """Send one message with smtplib (blocking: run it in a thread)."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    recipients = to or ["bob@example.net"]
    client: smtplib.SMTP
    if mode == "tls":
        client = smtplib.SMTP_SSL("localhost", port, context=context, timeout=10)
    else:
        client = smtplib.SMTP("localhost", port, timeout=10)
    with client:
        client.ehlo()
        if mode == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if user:
            client.login(user, password)
        return client.sendmail(
            "alice@example.com", recipients, message,
            mail_options=mail_options or [], rcpt_options=rcpt_options or [],
        )


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_upstream_receives_the_exact_bytes_and_capture_gets_them(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs, mode: str
) -> None:
    upstream = await smtp_upstream(security="starttls")
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture)
    port = proxy.tls_port if mode == "tls" else proxy.port
    assert port is not None

    refused = await asyncio.to_thread(send, port, certs, mode=mode)

    assert refused == {}
    [received] = await upstream.wait_for_messages(1)
    assert hashlib.sha256(received.data).hexdigest() == hashlib.sha256(MESSAGE).hexdigest()
    assert received.recipients == ["bob@example.net"]
    assert received.login == "alice@example.com"
    [captured] = capture.messages
    assert (captured.raw, captured.member) == (MESSAGE, "alice@example.com")
    assert captured.source == "smtp"
    assert (captured.state, captured.recipients) == ("accepted", ("bob@example.net",))


async def test_refused_recipient_reaches_the_client_unchanged_and_is_not_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="starttls", refuse={"nobody@example.net"})
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture)

    refused = await asyncio.to_thread(
        send, proxy.port, certs, mode="starttls", to=["bob@example.net", "nobody@example.net"]
    )

    expected = REFUSAL.format(address="nobody@example.net")
    assert refused == {"nobody@example.net": (550, expected[4:].encode())}
    [received] = await upstream.wait_for_messages(1)
    assert received.recipients == ["bob@example.net"]
    assert [m.recipients for m in capture.accepted_messages()] == [("bob@example.net",)]


async def test_every_recipient_refused_reaches_the_client(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none", refuse={"nobody@example.net"})
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(send, proxy.port, certs, mode="plain", to=["nobody@example.net"])

    expected = REFUSAL.format(address="nobody@example.net")[4:].encode()
    assert refused.value.recipients == {"nobody@example.net": (550, expected)}
    assert capture.messages == []


async def test_wrong_password_fails_for_the_client_with_upstreams_reply(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="starttls")
    proxy = await smtp_proxy(upstream)

    with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
        await asyncio.to_thread(send, proxy.port, certs, mode="starttls", password="wrong")

    assert failed.value.smtp_code == 535
    assert upstream.messages == []


async def test_failing_capture_still_delivers(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none")
    proxy = await smtp_proxy(upstream, capture=MemoryCapture(fail=True), tls=False)

    assert await asyncio.to_thread(send, proxy.port, certs, mode="plain") == {}

    [received] = await upstream.wait_for_messages(1)
    assert received.data == MESSAGE


class ExplodingCapture(MemoryCapture):
    async def pending(self, raw: bytes, member: str, source: str, recipients: object) -> int | None:
        raise OSError("disk full")


async def test_capture_that_raises_still_delivers(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none")
    proxy = await smtp_proxy(upstream, capture=ExplodingCapture(), tls=False)

    assert await asyncio.to_thread(send, proxy.port, certs, mode="plain") == {}
    await upstream.wait_for_messages(1)


async def test_dsn_and_size_parameters_pass_through(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none", size=1_000_000)
    proxy = await smtp_proxy(upstream, tls=False)

    await asyncio.to_thread(
        send, proxy.port, certs, mode="plain",
        mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=QQ314159"],
        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"],
    )

    [received] = await upstream.wait_for_messages(1)
    assert received.mail_args == (
        f"FROM:<alice@example.com> size={len(MESSAGE)} BODY=8BITMIME RET=HDRS ENVID=QQ314159"
    )
    assert received.rcpt_args == [
        "TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net"
    ]


async def test_without_auth_nothing_is_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none")
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await asyncio.to_thread(send, proxy.port, certs, mode="plain", user="")

    assert refused.value.smtp_code == 530
    assert refused.value.smtp_error == b"5.7.0 Authentication required"
    assert capture.messages == []


@pytest.mark.parametrize("unknown_logins", [False, True])
async def test_unknown_login_is_relayed_and_captured_only_when_configured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs, unknown_logins: bool
) -> None:
    upstream = await smtp_upstream(security="none")
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False, unknown_logins=unknown_logins)

    await asyncio.to_thread(
        send, proxy.port, certs, mode="plain", user="mallory@elsewhere.test", password="mallory-pw"
    )

    await upstream.wait_for_messages(1)
    members = [m.member for m in capture.accepted_messages()]
    assert members == (["mallory@elsewhere.test"] if unknown_logins else [])


async def test_message_refused_at_data_is_dropped_from_capture(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none", data_reply="554 5.7.1 Message rejected as spam")
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, proxy.port, certs, mode="plain")

    assert refused.value.smtp_code == 554
    assert refused.value.smtp_error == b"5.7.1 Message rejected as spam"
    assert [m.state for m in capture.messages] == ["refused"]


async def test_message_over_upstream_size_gets_552_and_nothing_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="none", size=2000)
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture, tls=False)
    big = MESSAGE + (b"x" * 70 + b"\r\n") * 100

    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await asyncio.to_thread(send, proxy.port, certs, mode="plain", message=big)

    assert refused.value.smtp_code == 552
    assert capture.accepted_messages() == []


async def test_upstream_over_implicit_tls_with_a_verified_certificate(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs
) -> None:
    upstream = await smtp_upstream(security="tls")
    proxy = await smtp_proxy(upstream)

    assert await asyncio.to_thread(send, proxy.port, certs, mode="starttls") == {}
    [received] = await upstream.wait_for_messages(1)
    assert received.data == MESSAGE
