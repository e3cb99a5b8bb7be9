"""Ingest rules on a real SQLite graph: direction, idempotency, team counts, completion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from relayproxy.graph import Graph, queries

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def mail(sender: str, to: str, *, mid: str, cc: str = "", date: str = "Mon, 05 Jan 2026 10:00:00 +0000",
         extra: str = "", body: str = "Hello there.") -> bytes:
    headers = f"From: {sender}\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
    headers += f"Subject: s\r\nDate: {date}\r\nMessage-ID: <{mid}>\r\n{extra}"
    return (headers + "\r\n" + body).encode()


def person(graph: Graph, email: str) -> dict[str, Any]:
    with graph.store.read() as conn:
        return next(p for p in queries.people(conn, NOW) if email in p["emails"])


def people(graph: Graph) -> list[str]:
    with graph.store.read() as conn:
        return sorted(e for p in queries.people(conn, NOW) for e in p["emails"])


def test_a_message_to_two_members_counts_once_for_the_team(graph: Graph) -> None:
    raw = mail("jane@globex.com", "alice@example.com, bob@example.com", mid="x1")
    graph.ingest_raw(raw, "alice@example.com", "imap-fetch", now=NOW)
    graph.ingest_raw(raw, "bob@example.com", "imap-fetch", now=NOW)
    jane = person(graph, "jane@globex.com")
    assert jane["messages_received"] == 1
    assert set(jane["strength_by_member"]) == {"alice@example.com", "bob@example.com"}


def test_direction_comes_from_the_team_not_the_capturing_member(graph: Graph) -> None:
    # Bob sent it (SMTP); Alice, in Cc, reads it over IMAP: still one outbound message from Bob.
    raw = mail("bob@example.com", "jane@globex.com", cc="alice@example.com", mid="x2")
    graph.ingest_raw(raw, "bob@example.com", "smtp", now=NOW, recipients=["jane@globex.com", "alice@example.com"])
    graph.ingest_raw(raw, "alice@example.com", "imap-fetch", now=NOW)
    jane = person(graph, "jane@globex.com")
    assert (jane["messages_sent"], jane["messages_received"]) == (1, 0)
    assert set(jane["strength_by_member"]) == {"bob@example.com"}


def test_envelope_recipients_count_and_refused_ones_do_not(graph: Graph) -> None:
    raw = mail("alice@example.com", "jane@globex.com, refused@initech.co.uk", mid="x3")
    # The upstream accepted Jane and a Bcc recipient, and refused the Initech address.
    graph.ingest_raw(raw, "alice@example.com", "smtp", now=NOW, recipients=["jane@globex.com", "secret@hooli.com"])
    # The copy in Sent, fetched later, names the refused recipient in To: still not counted.
    graph.ingest_raw(raw, "alice@example.com", "imap-fetch", now=NOW)
    assert people(graph) == ["jane@globex.com", "secret@hooli.com"]


def test_header_only_copy_is_completed_by_the_full_message(graph: Graph) -> None:
    raw = mail("jane@globex.com", "alice@example.com", mid="x4", body="The full body text.")
    header_block = raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    first = graph.ingest_raw(header_block, "alice@example.com", "imap-headers", now=NOW)
    second = graph.ingest_raw(raw, "alice@example.com", "imap-fetch", now=NOW)
    assert first is not None and second is not None
    assert first.new and not second.new and second.completed
    assert first.message_id == second.message_id
    with graph.store.read() as conn:
        text = conn.execute("SELECT full_text FROM messages WHERE id = ?", (first.message_id,)).fetchone()[0]
        hits = conn.execute("SELECT rowid FROM message_text WHERE message_text MATCH 'body'").fetchall()
    assert text.strip() == "The full body text."
    assert hits == [(first.message_id,)]
    assert person(graph, "jane@globex.com")["messages_received"] == 1


def test_absurd_dates_fall_back_to_capture_time(graph: Graph) -> None:
    graph.ingest_raw(mail("jane@globex.com", "alice@example.com", mid="x5", date="Tue, 01 Jan 2199 00:00:00 +0000"),
                     "alice@example.com", "imap-fetch", now=NOW)
    assert person(graph, "jane@globex.com")["last_contacted"] == "2026-02-01T00:00:00Z"


def test_display_name_on_own_mail_beats_what_others_call_them(graph: Graph) -> None:
    graph.ingest_raw(mail("alice@example.com", '"Janey" <jane@globex.com>', mid="x6"), "alice@example.com", "smtp",
                     now=NOW, recipients=["jane@globex.com"])
    assert person(graph, "jane@globex.com")["name"] == "Janey"
    graph.ingest_raw(mail('"Jane Doe" <jane@globex.com>', "alice@example.com", mid="x7"), "alice@example.com",
                     "imap-fetch", now=NOW)
    assert person(graph, "jane@globex.com")["name"] == "Jane Doe"
    graph.ingest_raw(mail("alice@example.com", '"J." <jane@globex.com>', mid="x8"), "alice@example.com", "smtp",
                     now=NOW, recipients=["jane@globex.com"])
    assert person(graph, "jane@globex.com")["name"] == "Jane Doe"


def test_co_recipients_of_received_mail_are_people_without_counts(graph: Graph) -> None:
    graph.ingest_raw(mail("jane@globex.com", "alice@example.com", cc="sam@hooli.com", mid="x9"),
                     "alice@example.com", "imap-fetch", now=NOW)
    sam = person(graph, "sam@hooli.com")
    assert (sam["messages_sent"], sam["messages_received"], sam["first_contacted"]) == (0, 0, None)
    assert sam["strength"] == "No Connection"


def test_unknown_member_copies_are_kept_under_their_login(graph: Graph) -> None:
    graph.ingest_raw(mail("jane@globex.com", "eve@elsewhere.org", mid="x10"), "eve@elsewhere.org", "imap-fetch",
                     now=NOW)
    assert set(person(graph, "jane@globex.com")["strength_by_member"]) == {"eve@elsewhere.org"}


def test_attachments_are_stored_once_by_hash(graph: Graph) -> None:
    attachment = (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
    )
    body = ("--b\r\nContent-Type: text/plain\r\n\r\nsee file\r\n--b\r\nContent-Type: application/pdf\r\n"
            "Content-Disposition: attachment; filename=a.pdf\r\n\r\nPDFDATA\r\n--b--\r\n")
    for mid in ("a1", "a2"):
        graph.ingest_raw(mail("jane@globex.com", "alice@example.com", mid=mid, extra=attachment, body=body),
                         "alice@example.com", "imap-fetch", now=NOW)
    with graph.store.read() as conn:
        rows = conn.execute("SELECT DISTINCT sha256 FROM attachments").fetchall()
    assert len(rows) == 1
    assert graph.blobs.get(rows[0][0]) == b"PDFDATA"
