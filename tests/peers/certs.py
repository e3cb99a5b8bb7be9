"""The session's certificates: a throwaway CA and a localhost certificate signed by it."""

from __future__ import annotations

import pytest

from relayproxy.demo.certs import Certs, make_certs

__all__ = ["Certs", "certs", "make_certs"]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))
