"""Pure pieces: reply rendering, the EHLO filter."""

from __future__ import annotations

from relayproxy.smtp.replies import Reply, ehlo_reply, extensions


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
