"""Text out of mail: HTML to plain text, and the main text of a reply.

The main text is what the sender wrote in this message: quoted history ("On … wrote:",
"> " lines, forwarded headers) and the signature removed. `mail-parser-reply` does the work;
it knows reply headers in many languages. It only reads the head of long texts: what a
person wrote in a reply sits at the top, and regular expressions over a megabyte of quoted
history are where the time would go.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache

from mailparser_reply import EmailReplyParser

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


@lru_cache(maxsize=1)
def _parser() -> EmailReplyParser:
    return EmailReplyParser(languages=_LANGUAGES)


def main_text(text: str) -> str:
    """The newest part of a message, without quoted history or signature."""
    if not text.strip():
        return ""
    head = text[:_HEAD].replace("\r\n", "\n")
    try:
        replies = _parser().read(text=head).replies
    except Exception:  # the parser is a heuristic; a failure keeps the text as it is
        return head.strip()
    if not replies:
        return head.strip()
    body = (replies[0].body or "").strip()
    return body or (replies[0].content or "").strip() or head.strip()


def signature(text: str) -> str:
    """The signature block of the newest part, or "" (used by enrichment)."""
    if not text.strip():
        return ""
    try:
        replies = _parser().read(text=text[:_HEAD].replace("\r\n", "\n")).replies
    except Exception:
        return ""
    return (replies[0].signatures or "").strip() if replies else ""
