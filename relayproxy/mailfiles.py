"""Reading mail files: mbox, Maildir folders, folders of message files and `.eml` files, streamed.

Each message is found as a `MessageRef` — a file, an offset and a length — and its bytes are
read only by whoever parses it (`MessageRef.load`), so the import command's worker processes
read mail straight from the files and nothing large passes between processes. mbox files are
scanned in large chunks for the ``From `` separator line (RFC 4155, with its timestamp): memory
stays flat whatever the file's size, and a truncated last message is still found. Each
message carries the date of its ``From `` line when there is one (used when the message
itself has no usable Date).
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_CHUNK = 4 * 1024 * 1024
_SEPARATOR = b"\nFrom "
# RFC 4155's From_ line ends in a timestamp ("From sender@example.com Mon Nov  2 10:00:00 2026";
# "From - ..." from Thunderbird). Requiring its hh:mm tells it from a body line that begins with
# "From " and was written unquoted, as mboxo writers and hand-made files do.
_FROM_LINE = re.compile(rb"From [^\n]*\b\d{1,2}:\d\d")


@dataclass(frozen=True, slots=True)
class MessageRef:
    path: str
    offset: int
    length: int
    origin: str  # the path, and the position within an mbox
    received: datetime | None

    def load(self) -> bytes:
        """The message's bytes."""
        with open(self.path, "rb") as file:
            return self.read_from(file)

    def read_from(self, file: object) -> bytes:
        """The message's bytes from an already open binary file of `path`."""
        return os.pread(file.fileno(), self.length, self.offset)  # type: ignore[attr-defined]


class MailFileError(Exception):
    """A path that is neither an mbox, a Maildir, a folder of mail, nor an .eml file."""


def _from_line_date(line: bytes) -> datetime | None:
    # "From sender@example.com Mon Nov  2 10:00:00 2026"
    parts = line.decode("ascii", "replace").split(None, 2)
    if len(parts) < 3:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(parts[2])
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def scan_mbox(path: Path) -> Iterator[MessageRef]:
    """The messages of an mbox file, found without holding more than a chunk of it."""
    index = 0
    current: tuple[int, bytes] | None = None  # (where the message's bytes start, its From line)
    buffer, at, pos = b"", 0, 0  # bytes from file offset `at`; search from buffer[pos:]
    first = True
    with path.open("rb") as file:
        while True:
            chunk = file.read(_CHUNK)
            buffer += chunk
            eof = not chunk
            while True:
                if first and buffer.startswith(b"From "):
                    boundary = 0
                else:
                    found = buffer.find(_SEPARATOR, pos)
                    if found < 0:
                        # A separator may straddle this chunk and the next: keep its first bytes.
                        pos = max(pos, len(buffer) - len(_SEPARATOR) + 1)
                        break
                    boundary = found + 1
                line_end = buffer.find(b"\n", boundary)
                if line_end < 0:
                    if not eof:
                        pos = max(0, boundary - 1)  # the From line is not all here yet
                        break
                    line_end = len(buffer)
                if not first and not _FROM_LINE.match(buffer, boundary, line_end):
                    pos = line_end  # "From " opening a line of a body that was not quoted: not a separator
                    continue
                first = False
                if current is not None:
                    ref = _ref(path, current, at + boundary, index)
                    if ref is not None:
                        yield ref
                        index += 1
                current = (at + line_end + 1, buffer[boundary:line_end].rstrip(b"\r"))
                pos = line_end
            if eof:
                end = at + len(buffer)
                break
            buffer, at, pos = buffer[pos:], at + pos, 0
    if current is not None:
        ref = _ref(path, current, end, index)
        if ref is not None:
            yield ref


def _ref(path: Path, current: tuple[int, bytes], end: int, index: int) -> MessageRef | None:
    begin, from_line = current
    if end - begin <= 0:
        return None
    return MessageRef(str(path), begin, end - begin, f"{path}#{index}", _from_line_date(from_line))


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def scan_maildir(path: Path) -> Iterator[MessageRef]:
    """Messages of a Maildir and its Maildir++ subfolders (``.Sent``, …)."""
    folders = [path] + sorted(p for p in path.iterdir() if p.name.startswith(".") and _is_maildir(p))
    for folder in folders:
        for sub in ("cur", "new"):
            for entry in sorted(os.scandir(folder / sub), key=lambda e: e.name):
                if entry.is_file() and not entry.name.startswith("."):
                    yield _file_ref(Path(entry.path))


def _file_ref(path: Path) -> MessageRef:
    stat = path.stat()
    received = datetime.fromtimestamp(stat.st_mtime, UTC)
    if path.suffix.lower() == ".emlx":
        # Apple Mail: a line with the message's length in bytes, the message, then an XML plist.
        first = _head(path).split(b"\n", 1)[0]
        if first.strip().isdigit():
            return MessageRef(str(path), len(first) + 1, int(first), str(path), received)
    return MessageRef(str(path), 0, stat.st_size, str(path), received)


_MAIL_SUFFIXES = (".eml", ".emlx", ".mbox", ".mbx")
# A message file opens with a header field: a name such as "Received" or "Message-ID", then ":"
# (RFC 5322 §3.6.8 allows more characters, which real names do not use and JSON files do).
_HEADER_FIELD = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:")


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(1000)
    except OSError:
        return b""


def _looks_like_mbox(path: Path) -> bool:
    return _head(path).startswith(b"From ")


def _looks_like_mail(path: Path) -> bool:
    """An mbox, or a message file without an .eml name: MH folders (1, 2, ...), Enron-style
    folders (1., 2., ...), saved messages. Index files beside them (Thunderbird's .msf) are not."""
    head = _head(path)
    return head.startswith(b"From ") or _HEADER_FIELD.match(head) is not None


def scan_path(path: Path) -> Iterator[MessageRef]:
    """Every message under `path`, whatever it is."""
    if path.is_dir():
        if _is_maildir(path):
            yield from scan_maildir(path)
            return
        for child in sorted(path.iterdir(), key=_natural):
            if child.name.startswith("."):
                continue
            if child.is_dir() or child.suffix.lower() in _MAIL_SUFFIXES or _looks_like_mail(child):
                yield from scan_path(child)
        return
    if not path.exists():
        raise MailFileError(f"{path} does not exist.")
    if _looks_like_mbox(path):
        yield from scan_mbox(path)
    else:
        yield _file_ref(path)


def _natural(path: Path) -> tuple[int, int, str]:
    """MH and Enron-style folders number their files: 2 before 10."""
    digits = path.name.rstrip(".")
    return (0, int(digits), path.name) if digits.isdigit() else (1, 0, path.name)


def total_size(paths: list[Path]) -> int:
    """Bytes to read under `paths` (for a progress bar)."""
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        elif path.is_dir():
            for root, _, files in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total
