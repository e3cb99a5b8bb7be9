"""Realistic synthetic mail, for the demo and the benchmarks.

Messages look like a small team's real traffic: several companies and free-mail senders,
non-ASCII names in RFC 2047, replies with quoted history and signatures, a text part with an
HTML alternative, and a PDF-like attachment. Deterministic for a given seed.
"""

from __future__ import annotations

import base64
import hashlib
import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

FIRST = ["Jane", "John", "Maria", "Jörg", "Aiko", "Pedro", "Fatima", "Li", "Olga", "Sam", "Chloé", "Ravi",
         "Noah", "Emma", "Lucas", "Mia", "Ömer", "Zoë", "Ivan", "Ana"]
LAST = ["Doe", "Smith", "García", "Müller", "Tanaka", "Silva", "Khan", "Wang", "Ivanova", "Brown", "Dubois",
        "Patel", "Jones", "Rossi", "Novak", "Kowalski", "Nagy", "Berg", "Costa", "Lee"]
COMPANIES = ["globex.com", "initech.co.uk", "acme-robotics.com", "umbrella.io", "hooli.com", "vandelay.de",
             "stark.industries", "wayne-enterprises.com", "cyberdyne.net", "soylent.fr"]
FREEMAIL = ["gmail.com", "yahoo.co.uk", "outlook.com"]
TOPICS = ["Quarterly review", "Contract renewal", "Intro call", "Pilot results", "Invoice 2291", "Roadmap",
          "Follow-up on our meeting", "Pricing proposal", "Security questionnaire", "Partnership"]
WORDS = ("the a proposal team review numbers next week contract pilot customer launch budget plan "
         "meeting call update thanks please let me know when you have time for this our results look "
         "good we should discuss timeline scope support integration data pricing quarter").split()


@dataclass(frozen=True)
class Person:
    name: str
    address: str


def _sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        para = " ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 5)))
        out.append(para)
        length += len(para) + 2
    return "\n\n".join(out)


def _wrap(text: str, width: int = 76) -> str:
    lines = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            if len(line) + len(word) + 1 > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "\r\n".join(lines)


def _address_header(person: Person) -> str:
    try:
        person.name.encode("ascii")
        return f'"{person.name}" <{person.address}>'
    except UnicodeEncodeError:
        return f"{Header(person.name, 'utf-8').encode()} <{person.address}>"


def contacts(rng: random.Random, count: int) -> list[Person]:
    """`count` distinct external people across companies and free-mail providers."""
    people: list[Person] = []
    seen: set[str] = set()
    while len(people) < count:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        domain = rng.choice(COMPANIES) if rng.random() < 0.85 else rng.choice(FREEMAIL)
        if rng.random() < 0.2 and domain in COMPANIES:
            domain = "mail." + domain if not domain.endswith(".co.uk") else "eu." + domain
        # People write their address without the accents of their name: Zoë Müller, zoe.muller.
        local = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore").decode() or "x"
        local = "".join(c for c in local if c.isalnum() or c == ".")
        address = f"{local}{len(people)}@{domain}"
        if address not in seen:
            seen.add(address)
            people.append(Person(f"{first} {last}", address))
    return people


def message(
    rng: random.Random, sender: Person, to: list[Person], cc: list[Person], when: datetime, *,
    size: int = 30_000, reply_to_id: str | None = None, index: int = 0,
) -> bytes:
    """One multipart message of about `size` bytes: text, HTML alternative, one attachment."""
    subject = rng.choice(TOPICS)
    if reply_to_id:
        subject = "Re: " + subject
    body = _paragraphs(rng, max(200, size // 8))
    # A person signs every message the same way: their phone follows from who they are.
    digits = int(hashlib.sha256(sender.address.encode()).hexdigest()[:8], 16)
    signature = f"-- \r\n{sender.name}\r\nAccount Manager\r\n+1 555 {100 + digits % 900} {1000 + digits % 9000}"
    quoted = ""
    if reply_to_id:
        quoted = (f"\r\n\r\nOn {format_datetime(when - timedelta(days=1))}, {to[0].name} <{to[0].address}> wrote:\r\n"
                  + "\r\n".join("> " + line for line in _wrap(_paragraphs(rng, size // 10)).split("\r\n")))
    text = _wrap(body) + "\r\n\r\n" + signature + quoted
    html = "<html><body>" + "".join(f"<p>{p}</p>" for p in body.split("\n\n")) + f"<p>{sender.name}</p></body></html>"
    attachment = bytes(rng.getrandbits(8) for _ in range(max(0, size // 3)))
    encoded = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    html_b64 = base64.encodebytes(html.encode()).decode().replace("\n", "\r\n")
    domain = sender.address.rpartition("@")[2]
    message_id = f"<{when.strftime('%Y%m%d%H%M%S')}.{index}.{rng.getrandbits(32):08x}@{domain}>"
    headers = [
        f"From: {_address_header(sender)}",
        "To: " + ", ".join(_address_header(p) for p in to),
    ]
    if cc:
        headers.append("Cc: " + ", ".join(_address_header(p) for p in cc))
    headers += [
        f"Subject: {subject}",
        f"Date: {format_datetime(when)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if reply_to_id:
        headers += [f"In-Reply-To: {reply_to_id}", f"References: {reply_to_id}"]
    boundary, alt = f"mixed-{index}", f"alt-{index}"
    headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    parts = [
        f"--{boundary}",
        f'Content-Type: multipart/alternative; boundary="{alt}"',
        "",
        f"--{alt}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        text,
        f"--{alt}",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        html_b64,
        f"--{alt}--",
        f"--{boundary}",
        f'Content-Type: application/pdf; name="report-{index % 50}.pdf"',
        f'Content-Disposition: attachment; filename="report-{index % 50}.pdf"',
        "Content-Transfer-Encoding: base64",
        "",
        encoded,
        f"--{boundary}--",
        "",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(parts)).encode("utf-8")


def mailbox(
    count: int, member: Person, *, seed: int = 1, people: int = 200, size: int = 30_000,
    start: datetime | None = None, days: int = 365,
) -> list[bytes]:
    """`count` messages to and from `member` over `days` days, about half each way."""
    rng = random.Random(seed)
    folks = contacts(rng, people)
    begin = start or datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        when = begin + timedelta(seconds=rng.randint(0, days * 86400))
        other = folks[int(rng.paretovariate(1.2)) % len(folks)]
        cc = [rng.choice(folks)] if rng.random() < 0.2 else []
        if rng.random() < 0.5:
            out.append(message(rng, member, [other], cc, when, size=size, index=i))
        else:
            reply = f"<prev.{i}@{member.address.rpartition('@')[2]}>" if rng.random() < 0.5 else None
            out.append(message(rng, other, [member], cc, when, size=size, index=i, reply_to_id=reply))
    return out


def to_mbox(messages: list[bytes]) -> bytes:
    """An mbox (mboxrd-style separators) holding `messages`."""
    chunks = []
    for raw in messages:
        body = raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
        chunks.append(b"From relayproxy@localhost Sat Jan  3 10:00:00 2026\n" + body.rstrip(b"\n") + b"\n\n")
    return b"".join(chunks)
