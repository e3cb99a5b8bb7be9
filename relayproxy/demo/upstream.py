"""A small submission server for the demo: AUTH, then delivery of team mail into Dovecot.

It plays the team's mail provider: mail for the team's domains is delivered over LMTP into the
recipients' Dovecot mailboxes (so it can be read back through the IMAP proxy); mail for anyone
else is accepted and kept in memory, as if sent out to the internet.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# aiosmtpd warns (and logs) about its own use of a deprecated attribute on every AUTH.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
logging.getLogger("mail.log").setLevel(logging.ERROR)


@dataclass
class DeliveringUpstream:
    """Accepts authenticated submissions; delivers local recipients over LMTP."""

    users: dict[str, str]
    local_domains: tuple[str, ...]
    lmtp: tuple[str, int]
    sent_out: list[tuple[str, list[str]]] = field(default_factory=list)
    accepted: list[bytes] = field(default_factory=list)  # every message answered 250, as received
    server: asyncio.Server | None = None

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        local = [r for r in envelope.rcpt_tos if r.rpartition("@")[2].lower() in self.local_domains]
        content = envelope.original_content or b""
        if local:
            await asyncio.to_thread(self._deliver, envelope.mail_from or "", local, content)
        self.sent_out.append((envelope.mail_from or "", [r for r in envelope.rcpt_tos if r not in local]))
        self.accepted.append(content)
        return "250 2.0.0 OK: queued"

    def _deliver(self, sender: str, recipients: list[str], content: bytes) -> None:
        with smtplib.LMTP(*self.lmtp) as lmtp:
            lmtp.sendmail(sender, recipients, content)

    def factory(self) -> Callable[[], SMTP]:
        return lambda: SMTP(
            self, authenticator=self.authenticate, auth_require_tls=False, decode_data=False,
            hostname="upstream.demo",
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self.server = await asyncio.get_running_loop().create_server(self.factory(), host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
