"""Literal payloads kept for capture, in memory or spilled to a temporary file.

Theory of operation: IMAP announces a literal's size before its bytes (RFC 9051 §4.3), so the
decision where to keep it is made once, up front: at or under the spill threshold the parser
keeps zero-copy memoryviews of the received chunks and joins them once at the end; above it the
bytes go to an anonymous temporary file as they pass. Either way memory per connection stays
bounded by the threshold plus one read.
"""

from __future__ import annotations

import tempfile
from typing import IO

DEFAULT_SPILL_THRESHOLD = 1 << 20  # bytes; larger literals go to a temporary file


class Payload:
    """The bytes of one literal the parser chose to keep."""

    __slots__ = ("size", "_parts", "_file", "_data")

    def __init__(self, size: int, spill_threshold: int) -> None:
        self.size = size
        self._parts: list[memoryview | bytes] = []
        self._file: IO[bytes] | None = tempfile.TemporaryFile() if size > spill_threshold else None
        self._data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Payload:
        """A payload holding `data` already complete (a quoted string, say)."""
        payload = cls(len(data), len(data))
        payload._data = data
        return payload

    @property
    def spilled(self) -> bool:
        """True when the bytes live in a temporary file rather than in memory."""
        return self._file is not None

    def write(self, chunk: memoryview | bytes) -> None:
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._parts.append(chunk)

    def finish(self) -> None:
        """All bytes are in: join the in-memory parts once (one copy per literal)."""
        if self._file is None and self._data is None:
            parts = self._parts
            self._data = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
            self._parts = []

    def read(self) -> bytes:
        """The whole literal; for a spilled one this reads the file (call off the event loop)."""
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            return self._file.read()
        if self._data is None:
            self.finish()
        assert self._data is not None
        return self._data

    def take_file(self) -> IO[bytes]:
        """The spilled file, flushed and rewound; the caller now owns it (and closes it)."""
        assert self._file is not None, "only a spilled payload has a file"
        file, self._file = self._file, None
        file.flush()
        file.seek(0)
        return file

    def discard(self) -> None:
        """Release the memory or the temporary file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._parts = []
        self._data = None
