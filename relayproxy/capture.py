"""The seam between the proxies and the graph.

Protocol code (smtp/, imap/) never imports the graph. It is handed an object with the
`Capture` interface and calls it at the moments DESIGN.md's data flow names:

SMTP, per message:
    ticket = await capture.pending(raw, member, "smtp", recipients)   # before the final dot goes up
    await capture.accepted(ticket, accepted_recipients)                # on upstream 2xx, before the client hears it
    await capture.refused(ticket)                                      # on upstream refusal or a lost session

IMAP, per message seen in a FETCH response or an APPEND:
    capture.received(raw, member, "imap-fetch" | "imap-append" | "imap-headers")   # never awaited; never blocks

Every method swallows its own failures (logs and counts them): the mail must flow whatever
happens to capture. `pending` returns None when it could not journal; `accepted`/`refused`
accept that None and do nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

SOURCES = ("smtp", "imap-fetch", "imap-append", "imap-headers", "import", "sync")


class Capture(Protocol):
    async def pending(
        self, raw: bytes, member: str, source: str, recipients: Sequence[str]
    ) -> int | None:
        """Journal a message about to be sent upstream; durable when this returns."""
        ...

    async def accepted(self, ticket: int | None, recipients: Sequence[str]) -> None:
        """Upstream accepted the message for `recipients`; durable when this returns."""
        ...

    async def refused(self, ticket: int | None) -> None:
        """Upstream refused the message (or the session was lost before its reply)."""
        ...

    def received(self, raw: bytes, member: str, source: str) -> None:
        """Hand over a message seen over IMAP; returns at once, journalling happens on the side."""
        ...


@dataclass
class CapturedMessage:
    raw: bytes
    member: str
    source: str
    recipients: tuple[str, ...] = ()
    state: str = "pending"


@dataclass
class MemoryCapture:
    """A Capture that keeps everything in a list: for protocol tests that need no graph."""

    messages: list[CapturedMessage] = field(default_factory=list)
    fail: bool = False

    async def pending(
        self, raw: bytes, member: str, source: str, recipients: Sequence[str]
    ) -> int | None:
        if self.fail:
            return None
        self.messages.append(CapturedMessage(raw, member, source, tuple(recipients)))
        return len(self.messages) - 1

    async def accepted(self, ticket: int | None, recipients: Sequence[str]) -> None:
        if ticket is not None:
            self.messages[ticket].state = "accepted"
            self.messages[ticket].recipients = tuple(recipients)

    async def refused(self, ticket: int | None) -> None:
        if ticket is not None:
            self.messages[ticket].state = "refused"

    def received(self, raw: bytes, member: str, source: str) -> None:
        if not self.fail:
            self.messages.append(CapturedMessage(raw, member, source, (), "accepted"))

    def accepted_messages(self) -> list[CapturedMessage]:
        return [m for m in self.messages if m.state == "accepted"]
