"""The pages: which template, with what context; search, sort, filter, pages; CSV; settings; merge."""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.testclient import TestClient

from relayproxy.graph import Graph
from tests.web.conftest import csrf_of


def context(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.context)


def person_id(client: TestClient, email: str) -> int:
    return int(client.get("/api/people", params={"q": email}).json()["items"][0]["id"])


def post(client: TestClient, url: str, **fields: str) -> Any:
    token = csrf_of(client.get("/settings").text)
    return client.post(url, data={**fields, "csrf_token": token}, follow_redirects=False)


def test_home_lists_latest_interactions_newest_first(alice: TestClient) -> None:
    response = alice.get("/")
    assert response.template.name == "home.html"
    dates = [m["date"] for m in context(response)["messages"]]
    assert dates == sorted(dates, reverse=True) and dates
    assert all(m["subject"] != "Our newsletter" for m in context(response)["messages"])
    jane = person_id(alice, "jane@globex.com")
    from_jane = [m for m in context(response)["messages"] if m["from"]["address"] == "jane@globex.com"]
    assert from_jane and all(m["from"]["person_id"] == jane for m in from_jane)  # linked, as recipients are


def test_people_sorts(alice: TestClient) -> None:
    by_name = [p["name"] for p in context(alice.get("/people?sort=name"))["people"]]
    assert by_name == sorted(by_name, key=str.casefold)
    last = [p["last_contacted"] for p in context(alice.get("/people?sort=last_contacted"))["people"]]
    assert last == sorted(last, reverse=True)
    assert context(alice.get("/people"))["people"][0]["emails"] == ["jane@globex.com"]


def test_people_search_by_name_address_company_and_text(alice: TestClient) -> None:
    def found(q: str) -> set[str]:
        return {p["emails"][0] for p in context(alice.get("/people", params={"q": q}))["people"]}

    assert found("Döe") == {"jane@globex.com"}
    assert found("hooli.com") == {"sam@hooli.com"}
    assert found("Globex") == {"jane@globex.com", "john@eu.globex.com"}
    assert found("friday") == {"friend@gmail.com"}  # only in the body of Pat's mail


def test_people_filters_and_pagination(alice: TestClient, bob: TestClient) -> None:
    ctx = context(alice.get("/people", params={"member": "alice@example.com"}))
    assert ctx["total"] == 6
    assert context(alice.get("/people", params={"member": "bob@example.com"}))["total"] == 0
    weak = context(alice.get("/people", params={"degree": "Very Weak"}))
    assert all(p["strength"] == "Very Weak" for p in weak["people"])
    assert alice.get("/people?sort=loudest").status_code == 422
    assert alice.get("/people?page=0").status_code == 422
    api = alice.get("/api/people", params={"limit": 2, "offset": 2, "sort": "name"}).json()
    full = alice.get("/api/people", params={"sort": "name"}).json()
    assert api["total"] == full["total"] == 6
    assert api["items"] == full["items"][2:4]


def test_person_page_shows_strength_components_and_timeline(alice: TestClient) -> None:
    response = alice.get(f"/people/{person_id(alice, 'jane@globex.com')}")
    assert response.template.name == "person.html"
    person = context(response)["person"]
    assert person["addresses"][0]["address"] == "jane@globex.com"
    assert person["company"]["name"] == "Globex"
    member = person["members"]["alice@example.com"]
    assert set(member) >= {"degree", "score", "frequency", "reciprocity", "recency", "regularity"}
    assert [m["subject"] for m in person["messages"]][:2] == ["Signed contract", "Out of office"]
    assert person["attachments"][0]["filename"] == "contract.html"
    assert "Reciprocity" in response.text


def test_company_page(alice: TestClient) -> None:
    companies = alice.get("/api/companies").json()
    globex = next(c for c in companies["items"] if c["domain"] == "globex.com")
    response = alice.get(f"/companies/{globex['id']}")
    company = context(response)["company"]
    assert {p["emails"][0] for p in company["people_list"]} == {"jane@globex.com", "john@eu.globex.com"}
    assert company["strongest"]["member"] == "alice@example.com"
    assert company["messages"]


def test_missing_things_are_404(alice: TestClient) -> None:
    for url in ("/people/9999", "/companies/9999", "/messages/9999", "/messages/1/attachments/999"):
        assert alice.get(url).status_code == 404
    for url in ("/api/people/9999", "/api/companies/9999", "/api/messages/9999"):
        response = alice.get(url)
        assert response.status_code == 404 and "error" in response.json()
    assert alice.get("/api/people?limit=abc").status_code == 422


def test_api_people_item_shape_matches_the_export(alice: TestClient) -> None:
    item = alice.get("/api/people").json()["items"][0]
    assert set(item) == {
        "id",
        "name",
        "emails",
        "company",
        "first_contacted",
        "last_contacted",
        "messages_sent",
        "messages_received",
        "strength",
        "strength_by_member",
        "job_title",  # enrichment (DESIGN.md)
        "phones",
        "links",
    }
    detail = alice.get(f"/api/people/{item['id']}").json()
    assert {"addresses", "members", "messages"} <= set(detail)
    company = alice.get("/api/companies").json()["items"][0]
    assert set(company) == {
        "id",
        "name",
        "domain",
        "people",
        "first_contacted",
        "last_contacted",
        "messages_sent",
        "messages_received",
        "strength",
        "domains",
        "description",
        "website",
    }


def test_csv_exports(alice: TestClient) -> None:
    response = alice.get("/people.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:4] == ["id", "name", "emails", "company"] and len(rows) == 7
    companies = list(csv.reader(io.StringIO(alice.get("/companies.csv").text)))
    assert companies[0][:3] == ["id", "name", "domain"] and len(companies) == 5


def test_settings_page_and_sharing_level(alice: TestClient) -> None:
    assert post(alice, "/settings/sharing", level="subject").status_code == 303
    response = alice.get("/settings")
    assert response.template.name == "settings.html"
    assert context(response)["settings"]["sharing"] == "subject"
    assert post(alice, "/settings/sharing", level="everything").status_code == 422


def test_an_exclusion_hides_the_person_now_and_stops_capture(alice: TestClient, graph: Graph) -> None:
    assert post(alice, "/settings/exclusions", pattern="hooli.com").status_code == 303
    assert alice.get("/api/people", params={"q": "sam@hooli.com"}).json()["total"] == 0
    assert "hooli.com" in context(alice.get("/settings"))["settings"]["exclusions"]
    graph.ingest_raw(
        b"From: New <new@hooli.com>\nTo: alice@example.com\nSubject: hi\n"
        b"Message-ID: <new@hooli.com>\nDate: Mon, 19 Jan 2026 10:00:00 +0000\n\nhi\n",
        "alice@example.com",
        "import",
    )
    with graph.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM addresses WHERE address = 'new@hooli.com'").fetchone()[0] == 0
    assert post(alice, "/settings/exclusions/remove", pattern="hooli.com").status_code == 303
    assert alice.get("/api/people", params={"q": "sam@hooli.com"}).json()["total"] == 1
    assert post(alice, "/settings/exclusions", pattern="not a domain").status_code == 422


def test_merging_two_people_combines_addresses_and_history(alice: TestClient) -> None:
    jane, john = person_id(alice, "jane@globex.com"), person_id(alice, "john@eu.globex.com")
    assert post(alice, f"/people/{jane}/merge", other="john@eu.globex.com").status_code == 303
    merged = alice.get(f"/api/people/{jane}").json()
    assert set(merged["emails"]) == {"jane@globex.com", "john@eu.globex.com"}
    assert merged["messages_sent"] == 1  # the proposal went to both: one message
    assert merged["messages_received"] == 2
    assert alice.get(f"/api/people/{john}").status_code == 404
    assert post(alice, f"/people/{jane}/merge", other=str(jane)).status_code == 422


def test_api_merge_takes_json(alice: TestClient) -> None:
    ceo, sam = person_id(alice, "ceo@initech.co.uk"), person_id(alice, "sam@hooli.com")
    assert alice.post(f"/api/people/{ceo}/merge", data={"other": sam}).status_code == 422
    response = alice.post(f"/api/people/{ceo}/merge", json={"other": sam})
    assert response.status_code == 200
    assert set(response.json()["emails"]) == {"ceo@initech.co.uk", "sam@hooli.com"}
