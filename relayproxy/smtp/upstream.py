"""One client session's connection to the upstream submission server, on aiosmtplib.

Theory of operation: each client session opens its own upstream session when it connects
(so the greeting can already say 421 when the server is unreachable) and then forwards its
commands one at a time, each as the exact line the client sent, getting back the server's
`Reply`. aiosmtplib does the connecting, TLS (implicit or STARTTLS, certificates verified with
`relayproxy.tls.upstream_context`) and reply parsing; its high-level helpers (`mail`, `data`,
`login`...) are not used, because they judge replies and rewrite message bytes (line endings,
dot-stuffing) while a relay must do neither. The message body goes up through `write` as the
stuffed bytes the client sent and is closed by `finish_data`, which sends the final "." CRLF.

Every way the upstream can fail mid-session (closed connection, timeout, garbage reply)
surfaces as `UpstreamLost`; a failed connect as `UpstreamUnavailable`, whose text is meant
for people.
"""

from __future__ import annotations

import asyncio
import ssl

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from relayproxy.config import HostPort
from relayproxy.smtp.replies import Reply, extensions

# Past this much unsent body data, wait for the upstream socket to drain before reading more.
_WRITE_BUFFER_HIGH = 1 << 20


class UpstreamUnavailable(Exception):
    """The upstream server could not be reached or refused the session; the text says why."""


class UpstreamLost(Exception):
    """The upstream session ended (closed, timed out, or spoke nonsense) before a reply."""


class Upstream:
    """A connected upstream session that relays command lines and message bytes."""

    def __init__(self, client: aiosmtplib.SMTP, address: HostPort, timeout: float) -> None:
        self._client = client
        self.address = address
        self.timeout = timeout
        self.extensions: dict[str, str] = {}

    @classmethod
    async def connect(
        cls,
        address: HostPort | None,
        security: str,
        tls_context: ssl.SSLContext,
        *,
        local_hostname: str,
        timeout: float,
    ) -> Upstream:
        """Connect and secure per `security` ("tls", "starttls", "none"); or UpstreamUnavailable."""
        if address is None:
            raise UpstreamUnavailable("no upstream server is configured (smtp.upstream)")
        client = aiosmtplib.SMTP(
            hostname=address.host,
            port=address.port,
            local_hostname=local_hostname,
            timeout=timeout,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=tls_context,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise UpstreamUnavailable(f"it answered {exc.code} {exc.message}") from None
        except aiosmtplib.SMTPException as exc:
            raise UpstreamUnavailable(_reason(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(_reason(exc)) from None
        return cls(client, address, timeout)

    @property
    def connected(self) -> bool:
        return self._client.is_connected

    @property
    def size_limit(self) -> int | None:
        """The upstream's advertised SIZE (RFC 1870), if it gave a number."""
        size = self.extensions.get("SIZE", "")
        return int(size) if size.isdigit() and int(size) > 0 else None

    async def command(self, line: bytes, timeout: float | None = None) -> Reply:
        """Send one command line (without CRLF); return upstream's reply.

        Raises ValueError for a line with control characters (aiosmtplib refuses to send
        them), UpstreamLost when the session is gone.
        """
        try:
            response = await self._client.execute_command(
                line, timeout=self.timeout if timeout is None else timeout
            )
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            self.close()
            raise UpstreamLost(_reason(exc)) from None
        except aiosmtplib.SMTPResponseException as exc:  # a malformed or endless reply
            self.close()
            raise UpstreamLost(_reason(exc)) from None
        reply = Reply(response.code, response.message)
        if line[:5].upper() == b"EHLO " and reply.code == 250:
            self.extensions = extensions(reply)
        return reply

    def write(self, data: bytes) -> None:
        """Pass message bytes on as they are; raises UpstreamLost when the session is gone."""
        protocol = self._protocol()
        try:
            protocol.write(data)
        except aiosmtplib.SMTPServerDisconnected as exc:
            self.close()
            raise UpstreamLost(_reason(exc)) from None

    async def drain(self) -> None:
        """Wait while a slow upstream has much unsent data (flow control)."""
        transport = self._client.transport
        if isinstance(transport, asyncio.WriteTransport):
            if transport.get_write_buffer_size() > _WRITE_BUFFER_HIGH:
                try:
                    await self._protocol()._drain_helper()
                except ConnectionError as exc:
                    self.close()
                    raise UpstreamLost(_reason(exc)) from None

    async def finish_data(self, last: bytes, timeout: float) -> Reply:
        """Send the body's `last` bytes and the end-of-data line (RFC 5321 §4.1.1.4).

        Returns upstream's verdict on the message.
        """
        protocol = self._protocol()
        self.write(last + b".\r\n")
        try:
            response = await protocol.read_response(timeout=timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError) as exc:
            self.close()
            raise UpstreamLost(_reason(exc)) from None
        except aiosmtplib.SMTPResponseException as exc:
            self.close()
            raise UpstreamLost(_reason(exc)) from None
        return Reply(response.code, response.message)

    def quit(self) -> None:
        """Say QUIT without waiting for the answer, and close."""
        try:
            self._protocol().write(b"QUIT\r\n")
        except (UpstreamLost, aiosmtplib.SMTPServerDisconnected):
            pass
        self.close()

    def close(self) -> None:
        """Drop the connection (buffered bytes are still flushed); idempotent."""
        self._client.close()

    def _protocol(self) -> SMTPProtocol:
        protocol = self._client.protocol
        if protocol is None or not protocol.is_connected:
            raise UpstreamLost("connection closed")
        return protocol


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return f"its certificate is not trusted: {text}"
    return text
