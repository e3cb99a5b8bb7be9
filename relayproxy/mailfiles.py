"""Reading mail files: mbox, Maildir folders and single `.eml` files, streamed.

mbox files are scanned in large chunks for the ``From `` separator at the start of a line
(RFC 4155), so memory stays flat whatever the file's size and a truncated last message is
still yielded. Each message comes with the date of its ``From `` line when there is one
(used when the message itself has no usable Date).
"""

from __future__ import annotations

import email.utils
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_CHUNK = 4 * 1024 * 1024
_MAX_MESSAGE = 200 * 1024 * 1024  # a "message" beyond this in an mbox is cut into the next


@dataclass(frozen=True, slots=True)
class FileMessage:
    raw: bytes
    origin: str  # path, and position within an mbox
    received: datetime | None


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


def _mbox_message(block: bytes, origin: str) -> FileMessage | None:
    newline = block.find(b"\n")
    first, body = (block, b"") if newline < 0 else (block[:newline], block[newline + 1 :])
    if not first.startswith(b"From "):
        body, first = block, b""
    if not body.strip():
        return None
    return FileMessage(body, origin, _from_line_date(first.rstrip(b"\r")) if first else None)


def read_mbox(path: Path) -> Iterator[FileMessage]:
    """Messages of an mbox file, one at a time."""
    buffer = b""
    index = 0
    with path.open("rb") as file:
        while True:
            chunk = file.read(_CHUNK)
            buffer += chunk
            start = 0
            while True:
                cut = buffer.find(b"\nFrom ", start + 1)
                if cut < 0:
                    break
                message = _mbox_message(buffer[start:cut + 1], f"{path}#{index}")
                if message is not None:
                    yield message
                    index += 1
                start = cut + 1
            buffer = buffer[start:]
            if not chunk:
                break
            if len(buffer) > _MAX_MESSAGE:
                message = _mbox_message(buffer, f"{path}#{index}")
                if message is not None:
                    yield message
                    index += 1
                buffer = b""
    if buffer.strip():
        message = _mbox_message(buffer, f"{path}#{index}")
        if message is not None:
            yield message


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def read_maildir(path: Path) -> Iterator[FileMessage]:
    """Messages of a Maildir and its Maildir++ subfolders (``.Sent``, …)."""
    folders = [path] + sorted(p for p in path.iterdir() if p.name.startswith(".") and _is_maildir(p))
    for folder in folders:
        for sub in ("cur", "new"):
            for entry in sorted(os.scandir(folder / sub), key=lambda e: e.name):
                if entry.is_file() and not entry.name.startswith("."):
                    yield _file_message(Path(entry.path))


def _file_message(path: Path) -> FileMessage:
    received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return FileMessage(path.read_bytes(), str(path), received)


def _looks_like_mbox(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(5) == b"From "


def read_path(path: Path) -> Iterator[FileMessage]:
    """Every message under `path`, whatever it is."""
    if path.is_dir():
        if _is_maildir(path):
            yield from read_maildir(path)
            return
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir() or child.suffix.lower() in (".eml", ".mbox", ".mbx") or _looks_like_mbox(child):
                yield from read_path(child)
        return
    if not path.exists():
        raise MailFileError(f"{path} does not exist.")
    if _looks_like_mbox(path):
        yield from read_mbox(path)
    else:
        yield _file_message(path)


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
