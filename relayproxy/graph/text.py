"""Text out of mail: HTML to plain text, and the main text of a reply.

The main text is what the sender wrote in this message: quoted history ("On … wrote:",
"> " lines, forwarded headers) and the signature removed. The language knowledge comes from
`mail-parser-reply` (its reply-header and signature patterns, in many languages). Its own
`read()` runs a large pattern over the whole text — about 6 ms for a 4 KB message — so here a
cheap scan finds candidate lines first and the precise patterns run only around them.
"""

from __future__ import annotations

import heapq
import html
import re
from collections.abc import Iterator
from functools import lru_cache

from mailparser_reply.parser import EmailMessage

_HEAD = 20_000  # characters the reply parser reads at most
_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "sv", "pl", "ja", "zh", "cs", "da", "ko"]

_BLOCK_TAGS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6]|/blockquote|/table)\b[^>]*>", re.I)
_DROP = re.compile(r"<\s*(script|style|head|title)\b.*?<\s*/\s*\1\s*>", re.I | re.S)
_TAGS = re.compile(r"<[^>]*>", re.S)
_COMMENTS = re.compile(r"<!--.*?-->", re.S)
_BLANKS = re.compile(r"\n[ \t]*\n([ \t]*\n)+")


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: block tags become line breaks, entities are decoded."""
    if not markup:
        return ""
    text = _COMMENTS.sub("", markup)
    text = _DROP.sub("", text)
    text = _BLOCK_TAGS.sub("\n", text)
    text = _TAGS.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


# A line can only start quoted history if it ends with a colon (every language's "… wrote:"),
# starts a quote (">"), is a separator ("-----Original Message-----", "_____"), or looks like
# a forwarded header ("From: …", "Von: …"). One scan finds such lines far faster than the
# precise patterns could search the whole text.
# Simple patterns that open with a literal ("\n", ":") let the regex engine skip ahead to it, so
# these scan several times faster than one pattern with all the alternatives; merged in order.
_LINE_OPENING = r"[ \t]*(?:>|-{5}|_{5}|\*?[^\W\d_]{2,12}[ \t]?:)"
_OPENS = re.compile(r"\n" + _LINE_OPENING)
_FIRST_LINE_OPENS = re.compile(_LINE_OPENING)
_ENDS_WITH_COLON = re.compile(r":[ \t]*(?:\n|$)")
_ENDS_WITH_WIDE_COLON = re.compile(r"\uff1a[ \t]*(?:\n|$)")  # CJK mail
# RFC 3676 §4.3 signature separator "-- " on a line of its own (opening with a literal: fast).
_SIG_DASHES = re.compile(r"\n-- ?(?=\n|$)")
_TAIL = 1200  # signatures sit in the last lines of the new text
_MAX_CANDIDATES = 20


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """mail-parser-reply's reply-header and signature patterns for our languages."""
    message = EmailMessage("", _LANGUAGES)
    return message.HEADER_REGEX, message.SIGNATURE_REGEX



def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _lines_back(text: str, start: int, count: int) -> int:
    """The start of the line `count` lines before the one starting at `start`."""
    for _ in range(count):
        if start == 0:
            break
        start = _line_start(text, start - 1)
    return start


def _lines_forward(text: str, start: int, count: int) -> int:
    """The end (after its newline) of the line `count` lines after the one starting at `start`."""
    end = start
    for _ in range(count + 1):
        newline = text.find("\n", end)
        if newline < 0:
            return len(text)
        end = newline + 1
    return end


@lru_cache(maxsize=8)  # main text and signature ask for the same message one after the other
def quote_start(text: str) -> int:
    """Where quoted history begins in `text` (len(text) when there is none).

    mail-parser-reply's header patterns are precise but slow over long text, so they run only
    on a few lines around each candidate line; a run of `>` lines counts on its own.
    """
    header, _ = _patterns()
    seen = -1
    streams: list[Iterator[int]] = [
        iter([0] if _FIRST_LINE_OPENS.match(text) else []),
        (m.start() + 1 for m in _OPENS.finditer(text)),
        (_line_start(text, m.start()) for m in _ENDS_WITH_COLON.finditer(text)),
    ]
    if "\uff1a" in text:
        streams.append(_line_start(text, m.start()) for m in _ENDS_WITH_WIDE_COLON.finditer(text))
    for n, start in enumerate(heapq.merge(*streams)):
        if start == seen:
            continue
        if n >= _MAX_CANDIDATES:
            break
        seen = start
        found = header.search(text, _lines_back(text, start, 2), _lines_forward(text, start, 3))
        if found:
            return found.start() + len(found.group(0)) - len(found.group(0).lstrip())
        line_end = _lines_forward(text, start, 0)
        if text.startswith(">", start) and text.startswith(">", line_end):
            before = start
            while before > 0:  # the attribution line ("… wrote:") above the quote, if any
                previous = _line_start(text, before - 1)
                if text[previous:before].strip():
                    return previous if text[previous:before].rstrip().endswith(":") else start
                before = previous
            return start
    return len(text)


@lru_cache(maxsize=8)  # main text and enrichment ask for the same text one after the other
def _signature_start(text: str) -> int:
    if text.startswith(("-- \n", "--\n")) or text in ("--", "-- "):
        return 0
    dashes = _SIG_DASHES.search(text)
    if dashes:
        return dashes.start() + 1
    _, signature = _patterns()
    found = signature.search(text, max(0, len(text) - _TAIL))
    return found.start() if found else len(text)


def main_text(text: str) -> str:
    """The newest part of a message, without quoted history or signature."""
    head = text[:_HEAD].replace("\r\n", "\n")
    if not head.strip():
        return ""
    try:
        new = head[: quote_start(head)]
        body = new[: _signature_start(new)].strip()
    except Exception:  # the patterns are heuristics; a failure keeps the text as it is
        return head.strip()
    return body or new.strip() or head.strip()


def signature(text: str) -> str:
    """The signature block of the newest part, or "" (used by enrichment)."""
    head = text[:_HEAD].replace("\r\n", "\n")
    new = head[: quote_start(head)]
    return new[_signature_start(new):].strip()
