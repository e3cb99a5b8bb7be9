"""Enrichment through ingest on a real SQLite graph: provenance, newest signature wins,
overrides win and survive re-enrichment, merges carry enrichment, vCards fill people."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from relayproxy.graph import Graph, enrich_store, merge, queries

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def mail(sender: str, *, mid: str, body: str, date: str = "Mon, 05 Jan 2026 10:00:00 +0000",
         extra: str = "", to: str = "alice@example.com") -> bytes:
    headers = f"From: {sender}\r\nTo: {to}\r\nSubject: s\r\nDate: {date}\r\nMessage-ID: <{mid}>\r\n{extra}"
    return (headers + "\r\n" + body).encode()


def signed(title: str, phone: str = "+1 415 555 0132", company: str = "Globex Corp") -> str:
    return f"Sounds good.\r\n\r\nBest regards,\r\nJane Doe\r\n{title}\r\n{company}\r\n{phone}\r\nwww.globex.com\r\n"


def person(graph: Graph, email: str) -> dict[str, Any]:
    with graph.store.read() as conn:
        return next(p for p in queries.people(conn, NOW) if email in p["emails"])


def company(graph: Graph, domain: str) -> dict[str, Any]:
    with graph.store.read() as conn:
        return next(c for c in queries.companies(conn, NOW) if c["domain"] == domain)


def details(graph: Graph, person_id: int) -> dict[str, Any]:
    with graph.store.read() as conn:
        return enrich_store.person_details(conn, person_id)


def ingest(graph: Graph, raw: bytes) -> None:
    graph.ingest_raw(raw, "alice@example.com", "imap-fetch", now=NOW)


def test_signature_fills_the_person_in_export(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body=signed("VP of Sales")))
    jane = person(graph, "jane@globex.com")
    assert jane["job_title"] == "VP of Sales"
    assert jane["phones"] == ["+14155550132"]
    assert jane["links"] == ["https://www.globex.com"]
    globex = company(graph, "globex.com")
    assert globex["name"] == "Globex Corp"
    assert globex["website"] == "https://www.globex.com"


def test_provenance_names_the_message_and_its_date(graph: Graph) -> None:
    result = graph.ingest_raw(mail("Jane Doe <jane@globex.com>", mid="e1", body=signed("VP of Sales")),
                              "alice@example.com", "imap-fetch", now=NOW)
    assert result is not None
    jane = person(graph, "jane@globex.com")
    found = details(graph, jane["id"])["job_title"]["found"]
    assert found[0]["message_id"] == result.message_id
    assert found[0]["seen_at"] == "2026-01-05T10:00:00Z"
    assert found[0]["source"] == "signature" and found[0]["confidence"] >= 0.5


def test_the_most_recent_signature_wins_whatever_the_ingest_order(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="new", body=signed("Chief Revenue Officer"),
                       date="Mon, 02 Feb 2026 10:00:00 +0000"))
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="old", body=signed("VP of Sales")))
    assert person(graph, "jane@globex.com")["job_title"] == "Chief Revenue Officer"


def test_a_second_copy_does_not_count_twice(graph: Graph) -> None:
    raw = mail("Jane Doe <jane@globex.com>", mid="e1", body=signed("VP of Sales"))
    ingest(graph, raw)
    graph.ingest_raw(raw, "bob@example.com", "imap-fetch", now=NOW)
    jane = person(graph, "jane@globex.com")
    assert details(graph, jane["id"])["job_title"]["found"][0]["times"] == 1


def test_quoted_signature_of_someone_else_is_not_taken(graph: Graph) -> None:
    body = ("Yes.\r\n\r\nBob\r\n\r\nOn Tue, 6 Jan 2026 at 14:02, Jane Doe <jane@globex.com> wrote:\r\n"
            "> Best regards,\r\n> Jane Doe\r\n> VP of Sales\r\n> +1 (415) 555-0132\r\n")
    ingest(graph, mail("Bob Stone <bob@initrode.com>", mid="q1", body=body))
    bob = person(graph, "bob@initrode.com")
    assert bob["job_title"] is None and bob["phones"] == []


def test_override_wins_and_survives_re_enrichment(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body=signed("VP of Sales")))
    jane = person(graph, "jane@globex.com")
    graph.store.write_sync(lambda conn: enrich_store.set_override(
        conn, "person", jane["id"], "job_title", "Head of Revenue", member_id=None, now="2026-03-01T00:00:00Z"))
    graph.store.write_sync(lambda conn: enrich_store.set_override(
        conn, "person", jane["id"], "phones", "+44 20 7946 0958", member_id=None, now="2026-03-01T00:00:00Z"))
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e2", body=signed("SVP Sales", "+1 415 555 0199"),
                       date="Mon, 02 Feb 2026 10:00:00 +0000"))
    jane = person(graph, "jane@globex.com")
    assert jane["job_title"] == "Head of Revenue"
    assert jane["phones"] == ["+442079460958"]
    graph.store.write_sync(lambda conn: enrich_store.clear_override(conn, "person", jane["id"], "job_title"))
    assert person(graph, "jane@globex.com")["job_title"] == "SVP Sales"


def test_name_override_is_kept_when_new_mail_arrives(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body="Hi"))
    jane = person(graph, "jane@globex.com")
    graph.store.write_sync(lambda conn: enrich_store.set_override(
        conn, "person", jane["id"], "name", "Jane Q. Doe", member_id=None, now="2026-03-01T00:00:00Z"))
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e2", body="Hi again"))
    assert person(graph, "jane@globex.com")["name"] == "Jane Q. Doe"


def test_bad_override_is_refused_with_a_reason(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body="Hi"))
    jane = person(graph, "jane@globex.com")
    with pytest.raises(enrich_store.OverrideError, match="not a phone number"):
        graph.store.write_sync(lambda conn: enrich_store.set_override(
            conn, "person", jane["id"], "phones", "call me", member_id=None, now="2026-03-01T00:00:00Z"))


def test_company_override_and_name_from_domain(graph: Graph) -> None:
    ingest(graph, mail("Li Wei <li@acme-robotics.com>", mid="c1", body="Hi, no signature here."))
    acme = company(graph, "acme-robotics.com")
    assert acme["name"] == "Acme Robotics"
    graph.store.write_sync(lambda conn: enrich_store.set_override(
        conn, "company", acme["id"], "description", "Makes robots.", member_id=None, now="2026-03-01T00:00:00Z"))
    assert company(graph, "acme-robotics.com")["description"] == "Makes robots."


def test_organization_header_names_the_company(graph: Graph) -> None:
    ingest(graph, mail("Kevin Flynn <kevin@encom.com>", mid="o1", body="Ping me.",
                       extra="Organization: ENCOM International\r\n"))
    assert company(graph, "encom.com")["name"] == "ENCOM International"


def test_merge_carries_enrichment(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body=signed("VP of Sales")))
    ingest(graph, mail("Jane Doe <jane.doe@gmail.com>", mid="e2", body="From my phone.\r\n\r\n-- \r\nJane Doe\r\n"
                       "M: +1 415 555 0177\r\n", date="Mon, 02 Feb 2026 10:00:00 +0000"))
    keep, other = person(graph, "jane.doe@gmail.com"), person(graph, "jane@globex.com")
    graph.store.write_sync(lambda conn: merge.merge_people(conn, keep["id"], other["id"]))
    merged = person(graph, "jane@globex.com")
    assert merged["id"] == keep["id"]
    assert merged["job_title"] == "VP of Sales"
    assert merged["phones"] == ["+14155550177", "+14155550132"]


def test_vcard_attachment_fills_the_person(graph: Graph) -> None:
    card = ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Marta Lopez\r\nN:Lopez;Marta;;;\r\nTITLE:Head of Procurement\r\n"
            "ORG:Initech\r\nEMAIL;TYPE=work:marta@initech.com\r\nTEL;TYPE=cell:+34 612 345 678\r\n"
            "URL:https://www.linkedin.com/in/martalopez\r\nEND:VCARD\r\n")
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nMy card is attached.\r\n--b\r\n"
            "Content-Type: text/vcard; name=marta.vcf\r\nContent-Disposition: attachment; filename=marta.vcf\r\n\r\n"
            f"{card}--b--\r\n")
    ingest(graph, mail("Marta Lopez <marta@initech.com>", mid="v1", body=body,
                       extra="MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"))
    marta = person(graph, "marta@initech.com")
    assert marta["job_title"] == "Head of Procurement"
    assert marta["phones"] == ["+34612345678"]
    assert "https://www.linkedin.com/in/martalopez" in marta["links"]
    assert details(graph, marta["id"])["job_title"]["found"][0]["source"] == "vcard"


def test_display_name_most_frequent_proper_cased(graph: Graph) -> None:
    for n, name in enumerate(["JANE DOE", "jane doe", "Jane Doe", "J. Doe"]):
        ingest(graph, mail(f"{name} <jane@globex.com>", mid=f"n{n}", body="Hi",
                           date=f"Mon, 0{n + 1} Jan 2026 10:00:00 +0000"))
    assert person(graph, "jane@globex.com")["name"] == "Jane Doe"


def test_team_mail_does_not_enrich(graph: Graph) -> None:
    raw = mail("Alice Example <alice@example.com>", mid="t1", to="Jane Doe <jane@globex.com>",
               body=signed("Team Lead"))
    ingest(graph, raw)
    assert person(graph, "jane@globex.com")["job_title"] is None
    with graph.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM person_facts").fetchone()[0] == 0


def test_effective_columns_are_json_lists(graph: Graph) -> None:
    ingest(graph, mail("Jane Doe <jane@globex.com>", mid="e1", body="Hi"))
    with graph.store.read() as conn:
        phones, links = conn.execute("SELECT phones, links FROM people").fetchone()
    assert json.loads(phones) == [] and json.loads(links) == []
