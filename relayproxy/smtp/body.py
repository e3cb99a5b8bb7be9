"""The DATA body on the wire: finding its end, and undoing dot-stuffing for capture.

Theory of operation: after a 354 the client sends the message dot-stuffed and ends it with
CRLF "." CRLF (RFC 5321 §4.1.1.4, §4.5.2). The proxy passes the stuffed bytes upstream exactly
as they came (so long lines, bare LFs and 8-bit bytes survive), holding back only what could be
the start of the terminator; the final "." CRLF is sent by the session itself, after capture
has journalled the message. `BodyScanner` is sans-IO: feed it chunks of any size, it returns the
body bytes that are safe to pass on and, once the terminator is seen, the bytes that followed
it (pipelined commands, RFC 2920). `unstuff` turns the stuffed body into the message itself:
what aiosmtpd would call `original_content`, the bytes the client meant to send.
"""

from __future__ import annotations

TERMINATOR = b"\r\n.\r\n"


class BodyScanner:
    """Splits a DATA stream into body bytes and whatever follows the end-of-data line."""

    def __init__(self) -> None:
        # The CRLF that ended the DATA command counts as the terminator's first CRLF, so a
        # body that is only "." CRLF is an empty message. These two bytes are never emitted.
        self._before = b"\r\n"
        self._held = b""
        self.done = False

    def feed(self, chunk: bytes) -> tuple[bytes, bytes | None]:
        """Take the next chunk; return (body bytes to pass on, bytes after the end or None)."""
        if self.done:
            raise RuntimeError("the body has already ended")
        data = self._held + chunk
        window = self._before + data
        end = window.find(TERMINATOR)
        if end != -1:
            self.done = True
            # window[end:end + 2] is the body's last CRLF; in `data` it ends at `end`.
            return data[:end], data[end + 3 :]
        keep = min(len(TERMINATOR) - 1, len(data))  # a terminator may start in the last 4 bytes
        body, self._held = data[: len(data) - keep], data[len(data) - keep :]
        self._before = (self._before + body)[-2:]
        return body, None


def unstuff(body: bytes) -> bytes:
    """The message a dot-stuffed DATA body carries (RFC 5321 §4.5.2)."""
    # A line that starts with "." had one more "." put in front by the sender. Lines end in
    # CRLF only (a bare LF does not start a line); bytes.replace is far faster than a regex.
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")
