from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relayproxy import config
from relayproxy.graph import Graph
from tests.graph import mixed


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    path = tmp_path / "relayproxy.toml"
    path.write_text(mixed.TEAM_TOML.format(tmp=tmp_path))
    return config.load(path)


@pytest.fixture
def graph(settings: config.Settings) -> Iterator[Graph]:
    graph = Graph(settings)
    yield graph
    graph.close()
