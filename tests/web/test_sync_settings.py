"""The settings page's history section: progress as recorded, and a sync started on request."""

from __future__ import annotations

from starlette.testclient import TestClient

from relayproxy import config
from relayproxy.graph import Graph, sync_state
from relayproxy.graph.views import Views
from relayproxy.web.app import create_app
from tests.web.conftest import NOW, PASSWORDS, csrf_of, dict_login_check, sign_in


class RecordingHistory:
    """Stands in for imap.sync.HistorySync at the seam the site uses (start, running)."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    def running(self, member: str) -> bool:
        return False

    def start(self, member: str, username: str, password: str) -> None:
        self.started.append((member, username))


def test_progress_is_shown_and_a_sync_starts_with_a_checked_password(
    settings: config.Settings, graph: Graph
) -> None:
    began = "2026-02-01T00:00:00Z"
    graph.store.write_sync(lambda conn: sync_state.begin(conn, "alice@example.com", "INBOX", 7, 120, began))
    sent = "&AMk-l&AOk-ments envoy&AOk-s"  # modified UTF-7, as the server names it
    graph.store.write_sync(lambda conn: sync_state.begin(conn, "alice@example.com", sent, 8, 30, began))
    history = RecordingHistory()
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW), history=history)
    alice = sign_in(TestClient(app), "alice@example.com")
    page = alice.get("/settings")
    assert page.status_code == 200
    assert "INBOX" in page.text and "/ 120" in page.text
    assert "Éléments envoyés" in page.text  # as people read it
    token = csrf_of(page.text)

    wrong = alice.post("/settings/sync", data={"password": "nope", "csrf_token": token}, follow_redirects=False)
    assert wrong.status_code == 422 and history.started == []
    right = alice.post("/settings/sync", data={"password": PASSWORDS["alice@example.com"], "csrf_token": token},
                       follow_redirects=False)
    assert right.status_code == 303
    assert history.started == [("alice@example.com", "alice@example.com")]
    assert PASSWORDS["alice@example.com"] not in alice.get("/settings").text


def test_without_csrf_nothing_starts(settings: config.Settings, graph: Graph) -> None:
    history = RecordingHistory()
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW), history=history)
    alice = sign_in(TestClient(app), "alice@example.com")
    response = alice.post("/settings/sync", data={"password": PASSWORDS["alice@example.com"]}, follow_redirects=False)
    assert response.status_code == 403 and history.started == []
