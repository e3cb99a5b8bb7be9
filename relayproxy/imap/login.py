"""Checking a member's mail credentials against the upstream IMAP server (for the web sign-in).

Theory of operation: one short IMAP conversation per check, connected exactly as the relay
connects (upstream.py): greeting, STARTTLS when `imap.upstream_security` says so, then
``AUTHENTICATE PLAIN`` (RFC 4616) when the server offers it -- it carries any byte of a
password -- else ``LOGIN`` with literals (RFC 9051 §6.2.3), and ``LOGOUT``. The answer is the
server's: tagged OK means the credentials are good. The password is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from relayproxy import tls
from relayproxy.config import Settings
from relayproxy.imap.capabilities import parse_capabilities
from relayproxy.imap.upstream import (
    UpstreamUnavailable,
    describe,
    starttls_answer_ok,
    starttls_command,
    upstream_address,
)

__all__ = ["UpstreamUnavailable", "check_login"]

log = logging.getLogger("relayproxy.imap")


async def check_login(
    settings: Settings, username: str, password: str, *, timeout: float = 15.0
) -> bool:
    """True when the upstream IMAP server accepts `username`/`password`.

    Raises UpstreamUnavailable (with a sentence saying why) when the server cannot be reached.
    """
    if not username or any(c in username + password for c in "\r\n\0"):
        return False
    where = upstream_address(settings)
    try:
        return await asyncio.wait_for(_check(settings, username, password), timeout)
    except UpstreamUnavailable:
        raise
    except Exception as exc:
        raise UpstreamUnavailable(describe(exc, where)) from None


async def _check(settings: Settings, username: str, password: str) -> bool:
    where = upstream_address(settings)
    security = settings.imap.upstream_security
    context = tls.upstream_context(settings) if security != "none" else None
    reader, writer = await asyncio.open_connection(
        where.host, where.port,
        ssl=context if security == "tls" else None,
        server_hostname=where.host if security == "tls" else None,
    )
    try:
        greeting = await reader.readline()
        if not greeting.upper().startswith(b"* OK"):
            raise UpstreamUnavailable(f"the mail server at {where} did not greet with OK")
        caps = parse_capabilities(greeting)
        if security == "starttls":
            writer.write(starttls_command())
            while (ok := starttls_answer_ok(await _line(reader))) is None:
                pass
            if not ok:
                raise UpstreamUnavailable(f"the mail server at {where} refused STARTTLS")
            assert context is not None
            await writer.start_tls(context, server_hostname=where.host)
            caps = None  # RFC 9051 §6.2.1: capabilities change after TLS
        if caps is None:
            writer.write(b"RP1 CAPABILITY\r\n")
            caps = ()
            while not (line := await _line(reader)).startswith(b"RP1 "):
                caps = parse_capabilities(line) or caps
        user, secret = username.encode(), password.encode()
        if "AUTH=PLAIN" in caps:
            writer.write(b"RP2 AUTHENTICATE PLAIN\r\n")
            if (await _line(reader)).startswith(b"+"):
                writer.write(base64.b64encode(b"\0" + user + b"\0" + secret) + b"\r\n")
        elif "LOGINDISABLED" not in caps:
            writer.write(b"RP2 LOGIN {%d}\r\n" % len(user))
            if (await _line(reader)).startswith(b"+"):
                writer.write(user + b" {%d}\r\n" % len(secret))
                if (await _line(reader)).startswith(b"+"):
                    writer.write(secret + b"\r\n")
        else:
            log.warning("IMAP server at %s refuses sign-in here (LOGINDISABLED)", where)
            return False
        while not (line := await _line(reader)).startswith(b"RP2 "):
            pass
        accepted = line[4:6].upper() == b"OK"
        writer.write(b"RP3 LOGOUT\r\n")
        return accepted
    finally:
        writer.close()


async def _line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if not line:
        raise UpstreamUnavailable("the mail server closed the connection")
    return line
