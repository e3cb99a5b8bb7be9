"""Enriched fields on the person and company pages: shown with provenance, corrected by a form."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.web.test_pages import context, person_id, post


def test_person_page_shows_enrichment_and_takes_a_correction(alice: TestClient) -> None:
    jane = person_id(alice, "jane@globex.com")
    page = alice.get(f"/people/{jane}")
    assert page.template.name == "person.html"  # type: ignore[attr-defined]
    assert "Enriched details" in page.text
    response = post(alice, f"/people/{jane}/enrichment", field="job_title", value="Head of Procurement")
    assert response.status_code == 303
    found = context(alice.get(f"/people/{jane}"))["person"]
    assert found["job_title"] == "Head of Procurement"
    assert found["enrichment"]["job_title"]["override"]["member"] == "alice@example.com"
    assert alice.get(f"/api/people/{jane}").json()["enrichment"]["job_title"]["value"] == "Head of Procurement"
    post(alice, f"/people/{jane}/enrichment", field="job_title", clear="1")
    assert context(alice.get(f"/people/{jane}"))["person"]["job_title"] is None


def test_a_bad_phone_is_refused_with_a_reason(alice: TestClient) -> None:
    jane = person_id(alice, "jane@globex.com")
    response = post(alice, f"/people/{jane}/enrichment", field="phones", value="not a number")
    assert response.status_code == 422
    assert "not a phone number" in response.text


def test_company_description_can_be_corrected(alice: TestClient) -> None:
    company = alice.get("/api/companies").json()["items"][0]
    post(alice, f"/companies/{company['id']}/enrichment", field="description", value="Makes widgets.")
    detail = alice.get(f"/api/companies/{company['id']}").json()
    assert detail["description"] == "Makes widgets."
    assert detail["enrichment"]["description"]["override"]["value"] == "Makes widgets."
    assert "Makes widgets." in alice.get(f"/companies/{company['id']}").text
