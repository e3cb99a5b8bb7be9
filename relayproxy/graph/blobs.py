"""Attachments stored once by SHA-256, as files under `storage.blobs` (``ab/cdef…``)."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    """A content-addressed folder: `put` returns the hash, `path` finds the file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._known: set[str] = set()
        self._folders: set[Path] = set()
        self._counter = itertools.count()

    def path(self, sha256: str) -> Path:
        """Where the blob with this hash lives (ValueError for anything but a hex hash)."""
        if not _SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256[2:]

    def put(self, content: bytes) -> str:
        """Store `content` unless it is there already; return its SHA-256."""
        digest = hashlib.sha256(content).hexdigest()
        if digest in self._known:
            return digest
        target = self.path(digest)
        if not target.exists():
            folder = target.parent
            if folder not in self._folders:
                folder.mkdir(parents=True, exist_ok=True)
                self._folders.add(folder)
            # Written under a unique temporary name, then renamed: a reader never sees half a file.
            temp = folder / f".tmp-{os.getpid()}-{threading.get_ident()}-{next(self._counter)}"
            try:
                with open(temp, "wb") as out:
                    out.write(content)
                os.replace(temp, target)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        if len(self._known) < 1_000_000:
            self._known.add(digest)
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
