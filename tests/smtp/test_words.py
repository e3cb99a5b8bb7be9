"""Pure pieces: SASL identities, reply rendering, the EHLO filter."""

from __future__ import annotations

from base64 import b64encode

import pytest

from relayproxy.smtp.replies import Reply, ehlo_reply, extensions
from relayproxy.smtp.sasl import identity


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("mechanism", "response", "login"),
    [
        ("PLAIN", b64("\0alice@example.com\0secret"), "alice@example.com"),
        ("PLAIN", b64("boss@example.com\0alice@example.com\0secret"), "alice@example.com"),
        ("plain", b64("\0Alice@Example.com\0secret"), "Alice@Example.com"),
        ("LOGIN", b64("alice@example.com"), "alice@example.com"),
        ("XOAUTH2", b64("user=alice@example.com\x01auth=Bearer " + "t" * 4000 + "\x01\x01"),
         "alice@example.com"),
        ("OAUTHBEARER", b64("n,a=alice@example.com,\x01host=x\x01auth=Bearer t\x01\x01"),
         "alice@example.com"),
        ("OAUTHBEARER", b64("n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer t\x01\x01"),
         "a,b=c@example.com"),
        ("OAUTHBEARER", b64("n,,\x01user=alice@example.com\x01auth=Bearer t\x01\x01"),
         "alice@example.com"),
        ("PLAIN", "=", None),
        ("PLAIN", "not base64!", None),
        ("PLAIN", b64("no separators"), None),
        ("CRAM-MD5", b64("alice digest"), None),
    ],
)
def test_identity(mechanism: str, response: str, login: str | None) -> None:
    assert identity(mechanism, response) == login


def test_reply_renders_multiline_with_continuations() -> None:
    reply = Reply(250, "upstream.test\nSIZE 100\nHELP")
    assert reply.render() == b"250-upstream.test\r\n250-SIZE 100\r\n250 HELP\r\n"
    assert Reply(354, "").render() == b"354\r\n"


def test_ehlo_keeps_what_can_be_relayed_and_offers_the_proxys_own_tls_and_auth() -> None:
    upstream = Reply(
        250,
        "upstream.test Hello\nSIZE 35882577\n8BITMIME\nSMTPUTF8\nDSN\nENHANCEDSTATUSCODES\n"
        "CHUNKING\nBINARYMIME\nSTARTTLS\nAUTH PLAIN LOGIN CRAM-MD5\nAUTH=PLAIN\nXCLIENT NAME\n"
        "PIPELINING\nHELP",
    )
    assert extensions(upstream)["AUTH"] == "PLAIN LOGIN CRAM-MD5"
    reply = ehlo_reply(upstream, starttls=True, auth=["PLAIN", "LOGIN"])
    assert reply.text.split("\n") == [
        "upstream.test Hello", "SIZE 35882577", "8BITMIME", "SMTPUTF8", "DSN",
        "ENHANCEDSTATUSCODES", "PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN",
    ]
    bare = ehlo_reply(upstream, starttls=False, auth=[])
    assert "STARTTLS" not in bare.text and "AUTH" not in bare.text


async def test_session_setup_matches_aiosmtpds_own() -> None:
    """RelaySession skips aiosmtpd's SMTP.__init__ for speed; it must set the same attributes."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    from relayproxy.capture import MemoryCapture
    from relayproxy.config import parse
    from relayproxy.smtp.server import SmtpProxy
    from relayproxy.smtp.session import RelaySession

    proxy = SmtpProxy(parse({}), MemoryCapture(), hostname="proxy.test")
    proxy._loop = asyncio.get_running_loop()
    ours = RelaySession(proxy, implicit_tls=False)
    theirs = SMTP(object(), hostname="proxy.test", loop=proxy._loop)
    assert set(vars(theirs)) <= set(vars(ours))
    assert set(theirs._smtp_methods) == set(ours._smtp_methods)
