"""One writer, many readers: the only owner of the SQLite write connection.

Theory of operation (after Datasette's `database.py`): a single thread owns the write
connection and takes plain ``fn(conn)`` callables from a queue. It drains whatever is queued
into one transaction, each job inside its own SAVEPOINT (a failing job rolls back alone), then
commits once and hands every job its result. That is group commit: many small journal writes
from concurrent SMTP sessions share one fsync. Async code awaits `write`; synchronous code
(the import command) calls `write_sync` or `submit`. Readers open their own connections
(`read()`), which WAL mode lets run while the writer writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from relayproxy.graph.schema import migrate

T = TypeVar("T")

_STOP = object()
_MAX_GROUP = 256  # jobs per transaction at most


class StoreError(Exception):
    """The database cannot be opened or written."""


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with relayproxy's pragmas (WAL, foreign keys off, busy timeout)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class Store:
    """The graph database: migrations on open, one writer thread, read connections on demand."""

    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self._durable = durable
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.open()

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            # Only a new database takes it (before WAL): 8 KB pages hold a message's text in
            # fewer overflow pages, so each ingest writes fewer pages.
            conn.execute("PRAGMA page_size = 8192")
            sqlite_utils.Database(conn).enable_wal()
            # FULL: a commit is on disk when it returns (the journal's promise); NORMAL for bulk import.
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'NORMAL'}")
            # The page cache is resident memory: modest while serving, larger for bulk import.
            conn.execute(f"PRAGMA cache_size = {-16384 if self._durable else -65536}")
            migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="graph-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            first = self._jobs.get()
            if first is _STOP:
                break
            group = [first]
            stop = False
            while len(group) < _MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                group.append(job)
            self._run_group(conn, group)
            if stop:
                break
        conn.close()

    @staticmethod
    def _run_group(conn: sqlite3.Connection, group: list[Any]) -> None:
        outcomes: list[tuple[concurrent.futures.Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for _, future in group:
                future.set_exception(StoreError(f"database is not writable: {exc}"))
            return
        for fn, future in group:
            try:
                conn.execute("SAVEPOINT job")
                result = fn(conn)
                conn.execute("RELEASE job")
                outcomes.append((future, True, result))
            except BaseException as exc:  # one job's failure must not sink the group
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                outcomes.append((future, False, exc))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for future, _, _ in outcomes:
                future.set_exception(StoreError(f"commit failed: {exc}"))
            return
        for future, ok, value in outcomes:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> concurrent.futures.Future[T]:
        """Queue `fn` for the writer thread; the future resolves after its transaction commits."""
        if self._thread is None or not self._thread.is_alive():
            raise StoreError(f"the writer for {self.path} is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the writer and wait for it (blocking)."""
        return self.submit(fn).result()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in the writer; awaits the commit."""
        return await asyncio.wrap_future(self.submit(fn))

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A fresh read-only connection, closed afterwards."""
        conn = connect(self.path, readonly=True)
        try:
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        """Finish queued jobs, then stop the writer and close its connection."""
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join()
        self._thread = None
