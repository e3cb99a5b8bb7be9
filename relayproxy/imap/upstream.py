"""Reaching the upstream IMAP server: addresses, TLS per `imap.upstream_security`, and errors
worded for people.

Theory of operation: both the relay (one upstream connection per client) and the sign-in check
connect the same way: TCP with implicit TLS (``tls``), TCP then ``STARTTLS`` (``starttls``,
RFC 9051 §6.2.1, the proxy doing it itself so the client never sees the upstream's TLS), or plain
TCP (``none``). Certificates are always verified (`tls.upstream_context`). Any failure becomes
`UpstreamUnavailable` with one sentence saying what went wrong, which the relay sends to the
client in ``* BYE [UNAVAILABLE] ...`` and the web sign-in shows.
"""

from __future__ import annotations

import asyncio
import ssl

from relayproxy.config import HostPort, Settings


class UpstreamUnavailable(Exception):
    """The upstream IMAP server cannot be reached or refused to set up the connection."""


def describe(exc: BaseException, where: HostPort) -> str:
    """One sentence for a connection failure to `where`."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"the mail server at {where} did not answer in time"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message
        return f"the certificate of the mail server at {where} could not be verified ({why})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the mail server at {where} failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"the mail server at {where} refused the connection"
    if isinstance(exc, UpstreamUnavailable):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot reach the mail server at {where} ({exc.strerror or exc})"
    return f"the connection to the mail server at {where} failed ({exc})"


def upstream_address(settings: Settings) -> HostPort:
    """`imap.upstream`, or UpstreamUnavailable when it is not set."""
    if settings.imap.upstream is None:
        raise UpstreamUnavailable("no IMAP server is configured (imap.upstream is empty)")
    return settings.imap.upstream


STARTTLS_TAG = b"RP0"


def starttls_command() -> bytes:
    return STARTTLS_TAG + b" STARTTLS\r\n"


def starttls_answer_ok(line: bytes) -> bool | None:
    """For a line read after our STARTTLS: True (go), False (refused), None (not the answer yet)."""
    if not line.startswith(STARTTLS_TAG + b" "):
        return None
    return line[len(STARTTLS_TAG) + 1 :][:2].upper() == b"OK"
