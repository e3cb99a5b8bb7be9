"""The visibility matrix: each sharing level × own/other member × page, API, CSV, attachment.

Alice holds every message (she imported them); Bob is another member; Alice's sharing level
varies. What Bob may see must be the same on every surface.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from relayproxy.graph import Graph
from relayproxy.graph.views import Views
from relayproxy.web.app import create_app
from tests.graph import mixed
from tests.web.conftest import ATTACHED, NOW, dict_login_check, make_settings, sign_in

SUBJECT = "Signed contract"
TEXT = "Pineapple"
EXPECTED = {  # level → (subject shown, text shown, attachment status)
    "own": (True, True, 200),
    "metadata": (False, False, 403),
    "subject": (True, False, 403),
    "full": (True, True, 200),
}


@pytest.fixture(params=["metadata", "subject", "full"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Graph, Any]]:
    settings = make_settings(tmp_path, alice_sharing=request.param)
    graph = Graph(settings, durable=False)
    for raw in mixed.MESSAGES:
        graph.ingest_raw(raw, "alice@example.com", "import", now=NOW)
    contract = graph.ingest_raw(ATTACHED, "alice@example.com", "import", now=NOW)
    assert contract is not None
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    yield request.param, graph, (app, contract.message_id)
    graph.close()


@pytest.mark.parametrize("viewer", ["alice@example.com", "bob@example.com"])
def test_every_surface_shows_the_granted_level(team: tuple[str, Graph, Any], viewer: str) -> None:
    level, graph, (app, message_id) = team
    expected_level = "own" if viewer == "alice@example.com" else level
    subject_shown, text_shown, attachment_status = EXPECTED[expected_level]
    client = sign_in(TestClient(app), viewer)

    page = client.get(f"/messages/{message_id}")
    assert page.status_code == 200
    assert (SUBJECT in page.text) == subject_shown
    assert (TEXT in page.text) == text_shown

    api = client.get(f"/api/messages/{message_id}").json()
    assert (api["subject"] == SUBJECT) == subject_shown
    assert ("text" in api) == text_shown
    assert bool(api["attachments"]) == text_shown

    jane_id = client.get("/api/people", params={"q": "jane@globex.com"}).json()["items"][0]["id"]
    person = client.get(f"/api/people/{jane_id}").json()
    listed = next(m for m in person["messages"] if m["id"] == message_id)
    assert (listed["subject"] == SUBJECT) == subject_shown
    person_page = client.get(f"/people/{jane_id}")
    assert (SUBJECT in person_page.text) == subject_shown
    assert ("contract.html" in person_page.text) == text_shown

    with graph.store.read() as conn:
        attachment_id = conn.execute("SELECT id FROM attachments WHERE message_id = ?", (message_id,)).fetchone()[0]
    download = client.get(f"/messages/{message_id}/attachments/{attachment_id}")
    assert download.status_code == attachment_status
    if attachment_status == 200:
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["content-type"] == "application/octet-stream"  # never text/html

    csv_text = client.get("/people.csv").text
    assert "jane@globex.com" in csv_text  # metadata (who, when) is always shared
    assert SUBJECT not in csv_text and TEXT not in csv_text  # and never content

    search = client.get("/api/people", params={"q": TEXT}).json()
    assert (jane_id in [p["id"] for p in search["items"]]) == text_shown


def private_setup(tmp_path: Path) -> tuple[Graph, Any, int]:
    settings = make_settings(tmp_path, alice_sharing="full")
    graph = Graph(settings, durable=False)
    for raw in mixed.MESSAGES:
        graph.ingest_raw(raw, "alice@example.com", "import", now=NOW)
    contract = graph.ingest_raw(ATTACHED, "alice@example.com", "import", now=NOW)
    assert contract is not None
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    return graph, app, contract.message_id


def post(client: TestClient, url: str, **fields: str) -> int:
    from tests.web.conftest import csrf_of

    token = csrf_of(client.get("/settings").text)
    return client.post(url, data={**fields, "csrf_token": token}, follow_redirects=False).status_code


def test_a_private_message_disappears_for_others_on_every_surface(tmp_path: Path) -> None:
    graph, app, message_id = private_setup(tmp_path)
    alice, bob = sign_in(TestClient(app), "alice@example.com"), sign_in(TestClient(app), "bob@example.com")
    jane = bob.get("/api/people", params={"q": "jane@globex.com"}).json()["items"][0]
    assert jane["messages_received"] == 2
    assert post(alice, f"/messages/{message_id}/private", private="1") == 303

    assert bob.get(f"/messages/{message_id}").status_code == 404
    assert bob.get(f"/api/messages/{message_id}").status_code == 404
    assert bob.get(f"/messages/{message_id}/attachments/1").status_code == 404
    assert bob.get(f"/api/people/{jane['id']}").json()["messages_received"] == 1
    assert all(m["id"] != message_id for m in bob.get(f"/api/people/{jane['id']}").json()["messages"])
    assert bob.get("/api/people", params={"q": TEXT}).json()["total"] == 0
    # Alice still sees her own mail in full.
    assert alice.get(f"/api/messages/{message_id}").json()["subject"] == SUBJECT
    assert alice.get(f"/api/people/{jane['id']}").json()["messages_received"] == 2
    graph.close()


def test_a_private_person_is_hidden_from_others(tmp_path: Path) -> None:
    graph, app, _ = private_setup(tmp_path)
    alice, bob = sign_in(TestClient(app), "alice@example.com"), sign_in(TestClient(app), "bob@example.com")
    pat = alice.get("/api/people", params={"q": "friend@gmail.com"}).json()["items"][0]
    assert post(alice, f"/people/{pat['id']}/private", private="1") == 303
    assert bob.get(f"/people/{pat['id']}").status_code == 404
    assert bob.get(f"/api/people/{pat['id']}").status_code == 404
    assert "friend@gmail.com" not in bob.get("/people.csv").text
    assert bob.get("/api/people", params={"q": "Pat"}).json()["total"] == 0
    assert alice.get(f"/api/people/{pat['id']}").status_code == 200
    lunch = alice.get(f"/api/people/{pat['id']}").json()["messages"][0]["id"]
    assert bob.get(f"/api/messages/{lunch}").status_code == 404
    graph.close()


def test_an_exception_opens_more_to_one_member_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, alice_sharing="metadata")
    graph = Graph(settings, durable=False)
    contract = graph.ingest_raw(ATTACHED, "alice@example.com", "import", now=NOW)
    assert contract is not None
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    alice, bob = sign_in(TestClient(app), "alice@example.com"), sign_in(TestClient(app), "bob@example.com")
    carol = sign_in(TestClient(app), "carol@example.com")
    assert post(alice, "/settings/exceptions", member="bob@example.com", level="full") == 303
    assert bob.get(f"/api/messages/{contract.message_id}").json()["subject"] == SUBJECT
    assert carol.get(f"/api/messages/{contract.message_id}").json()["subject"] is None
    assert post(alice, "/settings/sharing", level="subject") == 303
    assert carol.get(f"/api/messages/{contract.message_id}").json()["subject"] == SUBJECT
    assert "text" not in carol.get(f"/api/messages/{contract.message_id}").json()
    graph.close()


def test_a_message_with_several_copies_shows_at_the_most_open_non_private_level(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, alice_sharing="full")
    graph = Graph(settings, durable=False)
    both = ATTACHED.replace(b"To: Alice Example <alice@example.com>", b"To: alice@example.com, bob@example.com")
    first = graph.ingest_raw(both, "alice@example.com", "import", now=NOW)
    graph.ingest_raw(both, "bob@example.com", "import", now=NOW)
    assert first is not None
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    alice, carol = sign_in(TestClient(app), "alice@example.com"), sign_in(TestClient(app), "carol@example.com")
    assert "text" in carol.get(f"/api/messages/{first.message_id}").json()  # Alice's copy: full
    assert post(alice, f"/messages/{first.message_id}/private", private="1") == 303
    seen = carol.get(f"/api/messages/{first.message_id}").json()  # Bob's copy: metadata
    assert seen["subject"] is None and "text" not in seen
    graph.close()


SIGNED = b"""From: Jane Doe <jane@globex.com>
To: Bob Builder <bob@example.com>
Subject: Pilot
Date: Wed, 14 Jan 2026 09:00:00 +0000
Message-ID: <pilot@globex.com>

Happy to start the pilot next week.

--
Jane Doe
Chief Technology Officer | Globex
+1 415 555 0134
"""


def test_enrichment_from_mail_a_member_does_not_share_stays_with_that_member(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, alice_sharing="full")  # Bob shares metadata only
    graph = Graph(settings, durable=False)
    graph.ingest_raw(SIGNED, "bob@example.com", "import", now=NOW)
    app = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    alice, bob = sign_in(TestClient(app), "alice@example.com"), sign_in(TestClient(app), "bob@example.com")

    mine = bob.get("/api/people").json()["items"][0]
    assert (mine["job_title"], mine["phones"]) == ("Chief Technology Officer", ["+14155550134"])
    theirs = alice.get("/api/people").json()["items"][0]
    assert theirs["id"] == mine["id"] and (theirs["job_title"], theirs["phones"]) == (None, [])
    detail = alice.get(f"/api/people/{mine['id']}").json()
    assert detail["job_title"] is None and detail["enrichment"]["job_title"] == {
        "value": None, "override": None, "found": []}
    assert detail["enrichment"]["phones"]["found"] == [] and detail["enrichment"]["company_as_written"] == []
    page = alice.get(f"/people/{mine['id']}").text
    assert "Chief Technology Officer" not in page and "+14155550134" not in page
    assert "Chief Technology Officer" not in alice.get("/people.csv").text
    assert "Chief Technology Officer" in bob.get("/people.csv").text

    # New mail from Jane to Alice, read while the lists are in use: Alice sees what it says.
    to_alice = (SIGNED.replace(b"Bob Builder <bob@example.com>", b"Alice Example <alice@example.com>")
                .replace(b"<pilot@", b"<pilot-2@").replace(b"14 Jan", b"15 Jan")
                .replace(b"Chief Technology Officer", b"Chief Executive Officer"))
    graph.announce([graph.ingest_raw(to_alice, "alice@example.com", "import", now=NOW)])
    assert alice.get("/api/people").json()["items"][0]["job_title"] == "Chief Executive Officer"
    assert alice.get(f"/api/people/{mine['id']}").json()["phones"] == ["+14155550134"]

    # A correction is typed by a member, not read from mail: everyone sees it.
    assert post(alice, f"/people/{mine['id']}/enrichment", field="phones", value="+1 415 555 0199") == 303
    assert alice.get(f"/api/people/{mine['id']}").json()["phones"] == ["+14155550199"]
    # Once Bob shares his mail in full, Alice sees what it says.
    assert post(bob, "/settings/sharing", level="full") == 303
    opened = alice.get(f"/api/people/{mine['id']}").json()
    assert [f["value"] for f in opened["enrichment"]["job_title"]["found"]] == [
        "Chief Executive Officer", "Chief Technology Officer"]
    graph.close()
