"""The one rewrite the IMAP proxy makes to what the server says: capability lists.

Theory of operation: capabilities reach the client in three forms (RFC 9051 §7.2.2 and §7.1):
an untagged ``* CAPABILITY ...`` response, a ``[CAPABILITY ...]`` response code in the greeting,
and the same code in a tagged ``OK`` after sign-in. In each the proxy

* removes ``COMPRESS=...`` (RFC 4978): compressed streams would hide the mail from capture;
* removes the upstream's ``STARTTLS``/``LOGINDISABLED`` and adds its own, because TLS to the
  client is the proxy's business (it terminates it) and TLS to the server is separate;
* removes SASL mechanisms with channel binding (``AUTH=SCRAM-SHA-256-PLUS``, RFC 5802 §6): they
  bind the sign-in to the client's TLS channel, which ends at the proxy, so the server would
  refuse it; the client then picks a mechanism that passes a proxy;

and leaves every other byte of the line as it was. A line that needs no change is returned as
the very same object, so the relay's fast path stays a pass-through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# `* CAPABILITY a b c` and `... [CAPABILITY a b c] text`, matched case-insensitively (RFC 9051 §9:
# keywords are case-insensitive).
_UNTAGGED = re.compile(rb"(?i)(\*[ ]CAPABILITY)([^\r\n]*)(\r?\n)\Z")
_CODE = re.compile(rb"(?i)(\[CAPABILITY)([^\]\r\n]*)(\])")

_DROP_PREFIXES = (b"COMPRESS=",)
_DROP = (b"STARTTLS", b"LOGINDISABLED")


@dataclass(frozen=True)
class CapabilityPolicy:
    """What the proxy itself offers on one client connection right now."""

    starttls: bool  # offer STARTTLS: the proxy has a certificate and the client is not on TLS yet
    logindisabled: bool  # plaintext sign-in refused: client not on TLS and not on loopback


def filter_capabilities(tokens: list[bytes], policy: CapabilityPolicy) -> list[bytes]:
    """The capability tokens the client should see, in the server's order."""
    kept = [
        t for t in tokens
        if t.upper() not in _DROP and not t.upper().startswith(_DROP_PREFIXES) and not _binds_channel(t)
    ]
    added = [b"STARTTLS"] if policy.starttls else []
    if policy.logindisabled:
        added.append(b"LOGINDISABLED")
    if added:
        # After the IMAP4rev1/IMAP4rev2 tokens, where servers conventionally list them.
        at = 0
        for i, t in enumerate(kept):
            if t.upper().startswith(b"IMAP4"):
                at = i + 1
        kept[at:at] = added
    return kept


def _binds_channel(token: bytes) -> bool:
    return token.upper().startswith(b"AUTH=") and token.upper().endswith(b"-PLUS")


def _rewrite_list(text: bytes, policy: CapabilityPolicy) -> bytes:
    tokens = text.split()
    new = filter_capabilities(tokens, policy)
    if new == tokens:
        return text
    return b" " + b" ".join(new) if new else b""


def rewrite_line(line: bytes, policy: CapabilityPolicy) -> bytes:
    """`line` with its capability list filtered; the same object when nothing changes."""
    m = _UNTAGGED.match(line)
    if m is not None:
        old = m.group(2)
        new = _rewrite_list(old, policy)
        return line if new is old else m.group(1) + new + m.group(3)
    m = _CODE.search(line)
    if m is not None:
        old = m.group(2)
        new = _rewrite_list(old, policy)
        if new is old:
            return line
        return line[: m.start(2)] + new + line[m.end(2) :]
    return line


def parse_capabilities(line: bytes) -> tuple[str, ...] | None:
    """The capability tokens in a capability-bearing response line, or None."""
    m = _UNTAGGED.match(line) or _CODE.search(line)
    if m is None:
        return None
    return tuple(t.decode("ascii", "replace").upper() for t in m.group(2).split())
