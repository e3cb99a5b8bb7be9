"""Attachments stored once by SHA-256, as files under `storage.blobs` (``ab/cdef…``)."""

from __future__ import annotations

import contextlib
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
        self._base = str(self.root)
        self._known: set[str] = set()
        self._folders: set[str] = set()
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
        # Plain os calls: an import stores thousands of these a second.
        folder = os.path.join(self._base, digest[:2])
        target = os.path.join(folder, digest[2:])
        if not os.path.exists(target):
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            # Written under a unique temporary name, then renamed: a reader never sees half a file.
            temp = os.path.join(folder, f".tmp-{os.getpid()}-{threading.get_ident()}-{next(self._counter)}")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    view = memoryview(content)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        if len(self._known) < 1_000_000:
            self._known.add(digest)
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()
