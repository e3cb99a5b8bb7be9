"""Realistic test messages: multipart with attachments, non-ASCII names, threads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

_PEOPLE = [
    ("Jürgen Müller", "juergen.mueller", "globex.de"),
    ("Zoë Ångström", "zoe", "initech.se"),
    ("María José Pérez", "mj.perez", "acme.co.uk"),
    ("李雷", "li.lei", "example.cn"),
    ("Bob Smith", "bob", "hooli.com"),
]


def message(
    index: int,
    to: str = "alice@example.com",
    size: int = 2000,
    attachment: bool = True,
    seed: int = 0,
) -> bytes:
    """One realistic message (CRLF line ends), about `size` bytes of text plus an attachment."""
    rng = random.Random(seed * 100_003 + index)
    name, local, domain = _PEOPLE[index % len(_PEOPLE)]
    msg = EmailMessage()
    msg["From"] = Address(name, local, domain)
    msg["To"] = to
    cc_name, cc_local, cc_domain = _PEOPLE[(index + 1) % len(_PEOPLE)]
    msg["Cc"] = Address(cc_name, cc_local, cc_domain)
    msg["Subject"] = f"Angebot Nr. {index} – Grüße aus {domain}"
    date = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<m{index}.{seed}@{domain}>"
    words = ["Grüße", "offer", "Vertrag", "meeting", "naïve", "café", "deadline", "budget"]
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(12))
        lines.append(line)
        total += len(line) + 2
    msg.set_content("\n".join(lines) + f"\n\n-- \n{name}\n")
    if attachment:
        blob = rng.randbytes(max(size // 4, 64))
        msg.add_attachment(blob, maintype="application", subtype="octet-stream",
                           filename=f"Übersicht-{index}.bin")
        msg.set_boundary(f"=_part_{seed}_{index}")  # deterministic, so transcripts replay
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def sized_message(index: int, size: int, to: str = "alice@example.com") -> bytes:
    """A plain message of about `size` bytes (for benchmarks and big-literal tests)."""
    head = (
        f"From: Sender {index} <sender{index}@globex.com>\r\nTo: {to}\r\n"
        f"Subject: message {index}\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        f"Message-ID: <bench{index}@globex.com>\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"
    return head + line * max(1, (size - len(head)) // len(line))
