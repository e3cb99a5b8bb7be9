"""The session's throwaway Dovecot (relayproxy.demo.dovecot): IMAP, IMAPS and LMTP on free
loopback ports. Tests share it and give each test its own user (`dovecot.new_user()`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from relayproxy.demo.dovecot import Dovecot, free_port, start_dovecot, wait_for_port
from tests.peers.certs import Certs

__all__ = ["Dovecot", "dovecot", "free_port", "start_dovecot", "wait_for_port"]


@pytest.fixture(scope="session")
def dovecot(certs: Certs) -> Iterator[Dovecot]:
    """A Dovecot shared by the whole test session; use `dovecot.new_user()` per test."""
    server = start_dovecot(certs)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
