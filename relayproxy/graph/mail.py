"""From raw message bytes to `ParsedMail`: the fields the graph needs, whatever the input.

Theory of operation: the Rust-backed `fast_mail_parser` reads well-formed mail about two
hundred times faster than the standard library; it refuses some hostile mail (invalid
base64, broken structure). Those fall back to the standard library's `compat32` parser with
every decoding step guarded, so bad input yields what could be read rather than an error.
Only input that is not mail at all (no header block) raises `UnparsableMail`.

The message key that makes ingest idempotent is the Message-ID when there is one, else the
SHA-256 of the header block with line endings normalised.
"""

from __future__ import annotations

import email
import email.header
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import fast_mail_parser

from relayproxy.graph.text import html_to_text

if TYPE_CHECKING:  # enrichment (issue 8)
    from relayproxy.graph.enrichment import Findings

# Headers the graph reads; everything else stays in the raw bytes.
_WANTED = (
    "message-id", "subject", "date", "from", "sender", "to", "cc", "bcc", "reply-to",
    "list-id", "list-unsubscribe", "precedence", "auto-submitted", "return-path",
    "x-auto-response-suppress", "x-autoreply", "organization", "content-type",
)
_MAX_TEXT = 1_000_000  # characters of text kept per message; the raw bytes hold the rest


class UnparsableMail(Exception):
    """The bytes are not an email message."""


@dataclass(frozen=True, slots=True)
class Address:
    address: str  # lower-cased addr-spec
    name: str  # display name, RFC 2047 decoded; "" when none


@dataclass(slots=True)
class Attachment:
    filename: str | None
    content_type: str
    content: bytes
    size: int = 0
    sha256: str = ""  # set once stored; the content is then dropped


@dataclass(slots=True)
class ParsedMail:
    key: str
    message_id: str | None
    subject: str
    date: datetime | None
    sender: Address | None
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    headers: dict[str, list[str]]  # lower-cased names of _WANTED headers → decoded values
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    has_body: bool = True
    size: int = 0
    main_text: str = ""
    enrichment: Findings | None = None  # what the sender's signature and vCards say (issue 8)

    def header(self, name: str) -> str:
        """The first value of header `name` (lower-case), or ""."""
        values = self.headers.get(name)
        return values[0] if values else ""


def split_header_block(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw mail at the first empty line: (header block, body)."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.end() :]


def message_key(message_id: str | None, header_block: bytes) -> str:
    """The idempotency key: the Message-ID, else a hash of the normalised header block."""
    if message_id:
        return "mid:" + message_id
    normal = re.sub(rb"\r?\n", b"\n", header_block.strip())
    return "sha256:" + hashlib.sha256(normal).hexdigest()


def normalise_message_id(value: str) -> str | None:
    """`<abc@x>` → `abc@x`; None when there is nothing usable."""
    text = value.strip()
    match = re.search(r"<([^<>\s]+)>", text)
    if match:
        return match.group(1)
    text = text.strip("<> \t")
    return text or None if text and " " not in text else None


def decode_header(value: str) -> str:
    """Decode RFC 2047 encoded words; undecodable parts are kept with replacement characters."""
    if "=?" not in value:
        return " ".join(value.split())
    try:
        parts = email.header.decode_header(value)
    except (ValueError, LookupError, UnicodeError, AssertionError):
        return " ".join(value.split())
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", errors="replace"))
        except LookupError:
            out.append(chunk.decode("utf-8", errors="replace"))
    return " ".join("".join(out).split())


def parse_addresses(values: list[str]) -> list[Address]:
    """Addresses from header values (already decoded or not), in order, without duplicates."""
    found: dict[str, Address] = {}
    for name, addr in email.utils.getaddresses(values):
        address = addr.strip().strip("<>").lower()
        if "@" not in address or " " in address:
            continue
        decoded = decode_header(name).strip().strip('"').strip("'").strip()
        if address not in found:
            found[address] = Address(address, decoded)
    return list(found.values())


def parse_date(value: str) -> datetime | None:
    """An aware UTC datetime from a Date header, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000" or no zone: RFC 5322 §3.3 says UTC is the best guess
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _headers_from_block(block: bytes) -> dict[str, list[str]]:
    """The wanted headers of a raw header block, unfolded and RFC 2047 decoded."""
    text = block.decode("utf-8", errors="surrogateescape")
    headers: dict[str, list[str]] = {}
    name: str | None = None
    value: list[str] = []

    def flush() -> None:
        if name is not None and name in _WANTED:
            raw_value = "".join(value).strip()
            raw_value = raw_value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            headers.setdefault(name, []).append(raw_value)

    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and name is not None:
            value.append(" " + line.strip())
            continue
        flush()
        key, colon, rest = line.partition(":")
        if colon and key and " " not in key.strip():
            name, value = key.strip().lower(), [rest]
        else:
            name, value = None, []
    flush()
    return headers


def _build(
    headers: dict[str, list[str]], header_block: bytes, size: int, has_body: bool
) -> ParsedMail:
    message_id = normalise_message_id(headers.get("message-id", [""])[0])
    senders = parse_addresses(headers.get("from", []) or headers.get("sender", []))
    return ParsedMail(
        key=message_key(message_id, header_block),
        message_id=message_id,
        subject=decode_header(headers.get("subject", [""])[0])[:1000],
        date=parse_date(headers.get("date", [""])[0]),
        sender=senders[0] if senders else None,
        to=parse_addresses(headers.get("to", [])),
        cc=parse_addresses(headers.get("cc", [])),
        bcc=parse_addresses(headers.get("bcc", [])),
        headers={k: [decode_header(v) for v in vs] for k, vs in headers.items()},
        has_body=has_body,
        size=size,
    )


def parse_headers(raw: bytes) -> ParsedMail:
    """Only the header block (a header-only fetch, or the first pass of a sync)."""
    block, _ = split_header_block(raw)
    headers = _headers_from_block(block)
    if not headers:
        raise UnparsableMail("no mail headers found")
    return _build(headers, block, len(raw), has_body=False)


def parse(raw: bytes) -> ParsedMail:
    """Parse a whole message: headers, text, HTML and attachments."""
    try:
        parsed: object = fast_mail_parser.parse_email(raw)
    except (fast_mail_parser.ParseError, ValueError, UnicodeError, OverflowError) as exc:
        parsed = exc
    return fill_from_fast(raw, parsed)


def fill_from_fast(raw: bytes, parsed: object) -> ParsedMail:
    """A ParsedMail from a fast_mail_parser result; the tolerant path when that is an error."""
    if isinstance(parsed, Exception):
        mail = parse_headers(raw)
        mail.has_body = True
        _fill_stdlib(mail, raw)
        return mail
    mail = _from_fast_headers(raw, parsed)
    _fill_fast(mail, parsed)
    return mail


def _fast_address(value: Any) -> Address | None:
    address = (value.address or "").strip().lower()
    if "@" not in address or " " in address:
        return None
    return Address(address, " ".join((value.display_name or "").split()).strip("\"' "))


def _fast_addresses(values: Any) -> list[Address]:
    found: dict[str, Address] = {}
    for value in values or ():
        address = _fast_address(value)
        if address is not None and address.address not in found:
            found[address.address] = address
    return list(found.values())


def _from_fast_headers(raw: bytes, parsed: Any) -> ParsedMail:
    headers: dict[str, list[str]] = {}
    for name, values in parsed.headers.items():
        key = name.lower()
        if key in _WANTED:
            headers.setdefault(key, []).extend(values)
    if not headers:
        raise UnparsableMail("no mail headers found")
    message_id = normalise_message_id(headers.get("message-id", [""])[0])
    block = b"" if message_id else split_header_block(raw)[0]
    sender = _fast_address(parsed.from_) if parsed.from_ is not None else None
    date = parsed.date_parsed
    if date is not None:
        date = date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)
    return ParsedMail(
        key=message_key(message_id, block),
        message_id=message_id,
        subject=" ".join((parsed.subject or "").split())[:1000],
        date=date,
        sender=sender,
        to=_fast_addresses(parsed.to),
        cc=_fast_addresses(parsed.cc),
        bcc=_fast_addresses(parsed.bcc),
        headers=headers,
        has_body=True,
        size=len(raw),
    )


def _fill_fast(mail: ParsedMail, parsed: object) -> None:
    text = "\n".join(getattr(parsed, "text_plain", []) or [])
    html = "\n".join(getattr(parsed, "text_html", []) or [])
    attachments = []
    for part in getattr(parsed, "attachments", []) or []:
        content = part.content
        if content is None:
            continue
        data = bytes(content)
        mimetype = (part.mimetype or "application/octet-stream").lower()
        attachments.append(Attachment(part.filename or None, mimetype, data, len(data)))
    # The HTML is kept only when there is no plain-text part: it is then the only source to show.
    mail.html = "" if text else html[:_MAX_TEXT]
    mail.text = (text or html_to_text(html))[:_MAX_TEXT]
    mail.attachments = attachments


def _fill_stdlib(mail: ParsedMail, raw: bytes) -> None:
    """The tolerant path: compat32 parser, each part decoded on its own, errors skipped."""
    message = email.message_from_bytes(raw)
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    try:
        parts = list(message.walk())
    except Exception:  # a structure too broken to walk: keep the headers alone
        parts = []
    for part in parts:
        if part.is_multipart():
            continue
        try:
            decoded_payload = part.get_payload(decode=True)
        except Exception:
            decoded_payload = None
        payload = (
            decoded_payload
            if isinstance(decoded_payload, bytes)
            else str(part.get_payload() or "").encode("utf-8", "replace")
        )
        content_type = part.get_content_type()
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        disposition = str(part.get("Content-Disposition", "")).lower()
        if filename or disposition.startswith("attachment") or not content_type.startswith("text/"):
            name = decode_header(filename) if filename else None
            attachments.append(Attachment(name, content_type, payload, len(payload)))
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload.decode(charset, errors="replace")
        except LookupError:
            decoded = payload.decode("utf-8", errors="replace")
        (htmls if content_type == "text/html" else texts).append(decoded)
    html, text = "\n".join(htmls), "\n".join(texts)
    mail.html = "" if text else html[:_MAX_TEXT]
    mail.text = (text or html_to_text(html))[:_MAX_TEXT]
    mail.attachments = attachments


def now_utc() -> datetime:
    return datetime.now(UTC)
