"""The import command's parsing processes, started before anything else is loaded.

Spawning a process and loading the parser into it takes about as long as this process takes
to load and open the database, so the pool starts first and both happen at once. Kept free of
relayproxy imports for that reason: the warm-up is handed over as source text.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import NamedTuple

_WARM = "import relayproxy.importer as importer; importer.warm()"


class ParsingPool(NamedTuple):
    executor: concurrent.futures.ProcessPoolExecutor
    size: int


def start(size: int | None = None) -> ParsingPool:
    """Worker processes (one per core, at most 4), already loading what parsing needs."""
    workers = size or max(1, min(os.cpu_count() or 1, 4))
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(workers):
        executor.submit(exec, _WARM)
    return ParsingPool(executor, workers)
