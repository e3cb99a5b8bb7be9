"""Loopback ports for tests that need a server that is not there."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections while the block runs.

    The socket stays bound but never listens: connecting gets "connection refused", and no
    listener the test starts meanwhile (the proxy's own, on port 0) can be handed the same
    port, which would make the proxy relay to itself without end.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
