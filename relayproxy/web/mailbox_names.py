"""Mailbox names as people read them: IMAP's modified UTF-7 decoded (RFC 3501 §5.1.3).

Servers name non-ASCII mailboxes in modified UTF-7 ("&AMk-l&AOk-ments envoy&AOk-s" is French
Outlook's "Éléments envoyés"): "&" opens UTF-16BE in base64 with "," for "/" and no padding,
"-" closes it, and "&-" is "&" itself. relayproxy keeps the server's name for talking to the
server and decodes it only to show it; a malformed run is shown as it came.
"""

from __future__ import annotations

import base64
import binascii


def readable(name: str) -> str:
    """`name` with its modified UTF-7 runs decoded."""
    out: list[str] = []
    at = 0
    while (start := name.find("&", at)) >= 0:
        end = name.find("-", start)
        if end < 0:
            break
        out.append(name[at:start])
        run = name[start + 1 : end]
        if not run:
            out.append("&")
        else:
            try:
                padded = run.replace(",", "/") + "=" * (-len(run) % 4)
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
                out.append(name[start : end + 1])
        at = end + 1
    out.append(name[at:])
    return "".join(out)
