"""Fixtures for the web tests: a small team's graph, the app, and signed-in clients.

The login check is a real function over a dict of passwords (the production check asks the
upstream IMAP server; test_login_dovecot.py runs that one against Dovecot).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from relayproxy import config
from relayproxy.graph import Graph
from relayproxy.graph.views import Views
from relayproxy.web.app import create_app
from tests.graph import mixed

TEAM_TOML = """
[storage]
database = "{tmp}/relayproxy.db"
blobs = "{tmp}/blobs"

[team]
domains = ["example.com"]

[[team.members]]
login = "alice@example.com"
name = "Alice Example"
addresses = ["alice@example.com", "a.example@example.com"]
sharing = "{alice_sharing}"

[[team.members]]
login = "bob@example.com"
name = "Bob Builder"
addresses = ["bob@example.com"]
sharing = "metadata"

[[team.members]]
login = "carol@example.com"
name = "Carol Cook"
addresses = ["carol@example.com"]
sharing = "metadata"
"""

PASSWORDS = {"alice@example.com": "alice-pw", "bob@example.com": "bob-pw", "carol@example.com": "carol-pw"}
NOW = datetime(2026, 2, 1, tzinfo=UTC)

ATTACHED = b"""From: "Jane Doe" <jane@globex.com>
To: Alice Example <alice@example.com>
Subject: Signed contract
Date: Tue, 13 Jan 2026 10:00:00 +0000
Message-ID: <contract@globex.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

The signed contract is attached. Pineapple.

--b1
Content-Type: text/html; name="contract.html"
Content-Disposition: attachment; filename="contract.html"

<script>alert(1)</script>contract
--b1--
"""


async def dict_login_check(username: str, password: str) -> bool:
    """A real check over a dict of passwords."""
    return PASSWORDS.get(username) == password


def make_settings(tmp: Path, alice_sharing: str = "full") -> config.Settings:
    path = tmp / "relayproxy.toml"
    path.write_text(TEAM_TOML.format(tmp=tmp, alice_sharing=alice_sharing))
    return config.load(path)


@pytest.fixture
def settings(tmp_path: Path) -> config.Settings:
    return make_settings(tmp_path)


@pytest.fixture
def graph(settings: config.Settings) -> Iterator[Graph]:
    g = Graph(settings, durable=False)
    for raw in mixed.MESSAGES:
        g.ingest_raw(raw, "alice@example.com", "import", now=NOW)
    g.ingest_raw(ATTACHED, "alice@example.com", "import", now=NOW)
    yield g
    g.close()


@pytest.fixture
def app(settings: config.Settings, graph: Graph) -> Starlette:
    return create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


def sign_in(client: TestClient, login: str, password: str | None = None) -> TestClient:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": login, "password": password or PASSWORDS[login], "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def client(app: Starlette) -> TestClient:
    return TestClient(app)


@pytest.fixture
def alice(app: Starlette) -> TestClient:
    return sign_in(TestClient(app), "alice@example.com")


@pytest.fixture
def bob(app: Starlette) -> TestClient:
    return sign_in(TestClient(app), "bob@example.com")
