"""Real mail-client programs through the proxy: swaks and msmtp, over STARTTLS and implicit TLS."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from relayproxy.capture import MemoryCapture
from relayproxy.smtp.body import unstuff
from tests.peers.certs import Certs
from tests.peers.smtp_upstream import REFUSAL, StartUpstream
from tests.smtp.conftest import StartProxy

# What a mail client puts on the wire after DATA: dot-stuffed, ended by "." CRLF.
WIRE_BODY = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <swaks-1@example.com>\r\n"
    b"Subject: through swaks\r\n"
    b"\r\n"
    b"..stuffed line\r\n"
    b"\xe2\x82\xac 8-bit\r\n"
    b".\r\n"
)
# swaks --no-data-fixup sends the file and then a CRLF of its own.
SWAKS_FILE = WIRE_BODY[:-2]

MSMTP_MESSAGE = (
    b"From: Alice <alice@example.com>\n"
    b"To: Bob <bob@example.net>\n"
    b"Bcc: carol@example.org\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000\n"
    b"Message-ID: <msmtp-1@example.com>\n"
    b"Subject: through msmtp\n"
    b"\n"
    b".a line with a leading dot\n"
    b"\xc3\xa9t\xc3\xa9\n"
)


async def run(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


needs_swaks = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
needs_msmtp = pytest.mark.skipif(shutil.which("msmtp") is None, reason="msmtp not installed")


def swaks(
    port: int, body: Path, *, tls: str, to: str, password: str = "alice-pw", mechanism: str = "PLAIN"
) -> list[str]:
    return [
        "swaks", "--server", "127.0.0.1", "--port", str(port), "--helo", "client.test",
        "--from", "alice@example.com", "--to", to,
        "--auth", mechanism, "--auth-user", "alice@example.com", "--auth-password", password,
        "--tls-on-connect" if tls == "tls" else "--tls",
        "--data", f"@{body}", "--no-data-fixup", "--timeout", "10",
    ]


@needs_swaks
@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_swaks_message_arrives_byte_for_byte_and_refusal_is_relayed(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs, tmp_path: Path, tls: str
) -> None:
    upstream = await smtp_upstream(security="starttls", refuse={"nobody@example.net"})
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture)
    port = proxy.tls_port if tls == "tls" else proxy.port
    assert port is not None
    body = tmp_path / "body.eml"
    body.write_bytes(SWAKS_FILE)

    code, out = await run(*swaks(port, body, tls=tls, to="bob@example.net,nobody@example.net"))

    assert code == 0, out
    assert f"* {REFUSAL.format(address='nobody@example.net')}\n" in out  # "<** " or "<~* "
    [received] = await upstream.wait_for_messages(1)
    sent = unstuff(WIRE_BODY[: -len(b".\r\n")])
    assert hashlib.sha256(received.data).digest() == hashlib.sha256(sent).digest()
    [captured] = capture.accepted_messages()
    assert (captured.raw, captured.recipients) == (sent, ("bob@example.net",))


@needs_swaks
async def test_swaks_wrong_password_fails(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, tmp_path: Path
) -> None:
    upstream = await smtp_upstream(security="starttls")
    proxy = await smtp_proxy(upstream)
    body = tmp_path / "body.eml"
    body.write_bytes(SWAKS_FILE)

    code, out = await run(
        *swaks(proxy.port, body, tls="starttls", to="bob@example.net", password="nope")
    )

    assert code == 28, out  # swaks: authentication failed
    assert "<~* 535 5.7.8 Authentication credentials invalid\n" in out
    assert upstream.messages == []


@needs_swaks
async def test_swaks_cram_md5_is_relayed_and_names_the_member(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, tmp_path: Path
) -> None:
    upstream = await smtp_upstream(security="starttls", cram_md5=True)
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture)
    body = tmp_path / "body.eml"
    body.write_bytes(SWAKS_FILE)

    code, out = await run(*swaks(proxy.port, body, tls="starttls", to="bob@example.net", mechanism="CRAM-MD5"))

    assert code == 0, out
    assert upstream.logins == ["alice@example.com"]  # upstream checked the digest of its own challenge
    [captured] = capture.accepted_messages()
    assert captured.member == "alice@example.com"


@needs_msmtp
@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_msmtp_sends_with_bcc_and_the_envelope_recipients_are_captured(
    smtp_upstream: StartUpstream, smtp_proxy: StartProxy, certs: Certs, tmp_path: Path, tls: str
) -> None:
    upstream = await smtp_upstream(security="tls")
    capture = MemoryCapture()
    proxy = await smtp_proxy(upstream, capture=capture)
    port = proxy.tls_port if tls == "tls" else proxy.port
    config = tmp_path / "msmtprc"
    config.write_text(
        "defaults\n"
        "auth plain\n"
        "tls on\n"
        f"tls_starttls {'on' if tls == 'starttls' else 'off'}\n"
        f"tls_trust_file {certs.ca}\n"
        "account proxy\n"
        "host localhost\n"
        f"port {port}\n"
        "from alice@example.com\n"
        "user alice@example.com\n"
        "password alice-pw\n"
        "set_from_header off\n"
        "set_date_header off\n"
        "account default : proxy\n"
    )
    config.chmod(0o600)

    code, out = await run("msmtp", "-C", str(config), "-t", stdin=MSMTP_MESSAGE)

    assert code == 0, out
    [received] = await upstream.wait_for_messages(1)
    # msmtp ends lines with CRLF and drops the Bcc header; the rest is what it was given.
    sent = b"".join(
        line + b"\r\n" for line in MSMTP_MESSAGE.split(b"\n")[:-1] if not line.startswith(b"Bcc:")
    )
    assert received.data == sent
    [captured] = capture.accepted_messages()
    assert captured.raw == sent
    assert sorted(captured.recipients) == ["bob@example.net", "carol@example.org"]
