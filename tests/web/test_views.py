"""The list index: folding in ingested mail gives what a full rebuild gives."""

from __future__ import annotations

from relayproxy.graph import Graph, visibility
from relayproxy.graph.views import Views, fts_query
from tests.web.conftest import NOW

NEW = [
    b"From: Alice Example <alice@example.com>\nTo: Jane Doe <jane@globex.com>\nSubject: Again\n"
    b"Message-ID: <again@example.com>\nDate: Thu, 15 Jan 2026 10:00:00 +0000\n\nAgain.\n",
    b"From: Quinn New <quinn@newco.example.net>\nTo: bob@example.com\nCc: alice@example.com\nSubject: Hi\n"
    b"Message-ID: <hi@newco.example.net>\nDate: Fri, 16 Jan 2026 10:00:00 +0000\n\nHi.\n",
]


def test_ingested_mail_is_folded_in_like_a_rebuild(graph: Graph) -> None:
    views = Views(now=lambda: NOW)
    with graph.store.read() as conn:
        alice = visibility.viewer(conn, "alice@example.com")
        assert alice is not None
        views.people(conn, alice)
        built = views._index
    results = [graph.ingest_raw(raw, "alice@example.com", "smtp", now=NOW) for raw in NEW]
    views.ingested([r.message_id for r in results if r is not None])
    with graph.store.read() as conn:
        for sort in ("strength", "name", "last_contacted"):
            folded = views.people(conn, alice, sort=sort, limit=100)
            assert folded == Views(now=lambda: NOW).people(conn, alice, sort=sort, limit=100)
        assert views._index is built  # updated in place, not rebuilt
        assert views.people(conn, alice, q="quinn")[1] == 1


def test_fts_query_quotes_every_word() -> None:
    assert fts_query('pine" OR apple*') == '"pine" "OR" "apple"'
    assert fts_query("  ") == ""
