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


# Cheap signs that a reply header may be near, looked for with str.find in the lower-cased
# text (much faster than one regular expression with many alternatives).
_KEYWORDS = (
    "wrote:", "schrieb", "\u00e9crit", "escribi\u00f3", "escreveu", "schreef", "scritto", " krev", "skrev",
    "napisa\u0142", "kirjoitti", "\u043d\u0430\u043f\u0438\u0441\u0430\u043b", "\u5199\u9053", "original message",
    "\nfrom:", "\n*from:", "\nvon:", "\nde:", "\nde :", "\nvan:", "\nda:", "\nfr\u00e5n:", "\nfra:", "\nod:",
    "\nsent:", "\ngesendet:", "\n>", "\n_____",
)
_QUOTED_RUN = re.compile(r"^(?:>.*\n){2,}", re.M)
_SIG_DASHES = re.compile(r"^-- ?$", re.M)  # RFC 3676 §4.3 signature separator
_TAIL = 1200  # signatures sit in the last lines of the new text
_MAX_CANDIDATES = 20


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """mail-parser-reply's reply-header and signature patterns for our languages."""
    message = EmailMessage("", _LANGUAGES)
    return message.HEADER_REGEX, message.SIGNATURE_REGEX


def _line_start(text: str, pos: int, back: int = 0) -> int:
    for _ in range(back + 1):
        pos = text.rfind("\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def quote_start(text: str) -> int:
    """Where quoted history begins in `text` (len(text) when there is none).

    mail-parser-reply's header patterns are precise but slow over long text, so they run only
    on a few lines around each cheap candidate; a run of `>` lines counts on its own.
    """
    header, _ = _patterns()
    lower = "\n" + text.lower()  # the leading newline lets "\n>" match on the first line
    queue = [(pos, word) for word in _KEYWORDS if (pos := lower.find(word)) >= 0]
    heapq.heapify(queue)
    for _ in range(_MAX_CANDIDATES):
        if not queue:
            break
        pos, word = heapq.heappop(queue)
        at = max(0, pos - 1)  # position in `text`
        begin = _line_start(text, at + 1, back=2)
        end = text.find("\n", at + len(word))
        end = len(text) if end < 0 else min(len(text), end + 400)
        found = header.search(text, begin, end)
        if found:
            return found.start() + len(found.group(0)) - len(found.group(0).lstrip())
        if word == "\n>":
            run = _QUOTED_RUN.match(text, at + 1 if pos else 0)
            if run:
                before = text[: run.start()].rstrip()
                return _line_start(text, len(before)) if before.endswith(":") else run.start()
        following = lower.find(word, pos + 1)
        if following >= 0:
            heapq.heappush(queue, (following, word))
    return len(text)


def _signature_start(text: str) -> int:
    dashes = _SIG_DASHES.search(text)
    if dashes:
        return dashes.start()
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
