"""The journal: durable capture, exactly-once ingest across a restart, failures never raise."""

from __future__ import annotations

from relayproxy import config, metrics
from relayproxy.capture import JournalCapture
from relayproxy.graph import Graph, queries
from relayproxy.worker import IngestWorker
from tests.graph.test_ingest import NOW, mail


def team_counts(graph: Graph) -> dict[str, tuple[int, int]]:
    with graph.store.read() as conn:
        return {p["emails"][0]: (p["messages_sent"], p["messages_received"]) for p in queries.people(conn, NOW)}


async def test_accepted_mail_reaches_the_graph_once(graph: Graph) -> None:
    worker = IngestWorker(graph)
    capture = JournalCapture(graph, worker.wake)
    raw = mail("alice@example.com", "jane@globex.com, sam@hooli.com", mid="j1")
    ticket = await capture.pending(raw, "alice@example.com", "smtp", ["jane@globex.com", "sam@hooli.com"])
    assert ticket is not None
    await capture.accepted(ticket, ["jane@globex.com"])
    other = mail("alice@example.com", "x@y.com", mid="j2")
    refused = await capture.pending(other, "alice@example.com", "smtp", ["x@y.com"])
    await capture.refused(refused)
    await worker.drain()
    assert team_counts(graph) == {"jane@globex.com": (1, 0)}
    assert graph.journal_lag() == 0


async def test_a_restart_ingests_pending_and_accepted_entries_exactly_once(settings: config.Settings) -> None:
    graph = Graph(settings)
    capture = JournalCapture(graph)
    await capture.pending(mail("alice@example.com", "jane@globex.com", mid="r1"), "alice@example.com", "smtp",
                          ["jane@globex.com"])  # the process dies before upstream's reply
    accepted = await capture.pending(mail("alice@example.com", "sam@hooli.com", mid="r2"), "alice@example.com",
                                     "smtp", ["sam@hooli.com"])
    await capture.accepted(accepted, ["sam@hooli.com"])
    capture.received(mail("jane@globex.com", "alice@example.com", mid="r3"), "alice@example.com", "imap-fetch")
    await capture.flush()
    graph.close()  # nothing was ingested: as after a kill

    graph = Graph(settings)
    assert graph.journal_recover() == 1
    worker = IngestWorker(graph)
    await worker.drain()
    # The client retries the pending message after the crash: same Message-ID, no double count.
    graph.ingest_raw(mail("alice@example.com", "jane@globex.com", mid="r1"), "alice@example.com", "smtp", now=NOW,
                     recipients=["jane@globex.com"])
    await worker.drain()
    assert team_counts(graph) == {"jane@globex.com": (1, 1), "sam@hooli.com": (1, 0)}
    graph.close()


async def test_capture_failure_is_counted_not_raised(graph: Graph) -> None:
    metrics.reset()
    graph.close()  # the writer is gone: every journal write fails
    capture = JournalCapture(graph)
    assert await capture.pending(b"x", "alice@example.com", "smtp", []) is None
    await capture.accepted(None, [])
    capture.received(b"From: a@b.com\r\n\r\nx", "alice@example.com", "imap-fetch")
    await capture.flush()
    assert metrics.value("capture_failures_total", protocol="smtp") == 1
    assert metrics.value("capture_failures_total", protocol="imap") == 1


async def test_unparsable_journal_entries_are_kept_raw_and_leave_the_journal(graph: Graph) -> None:
    capture = JournalCapture(graph)
    capture.received(b"garbage without headers", "alice@example.com", "imap-fetch")
    await capture.flush()
    await IngestWorker(graph).drain()
    with graph.store.read() as conn:
        assert conn.execute("SELECT raw FROM unparsable").fetchall() == [(b"garbage without headers",)]
    assert graph.journal_lag() == 0


async def test_a_spilled_file_is_journalled_in_chunks_and_parsed_in_a_worker_process(graph: Graph) -> None:
    import tempfile

    body = b"x" * (3 * 1024 * 1024)
    raw = mail("jane@globex.com", "alice@example.com", mid="big1", body=body.decode())
    file = tempfile.TemporaryFile()
    file.write(raw)
    capture = JournalCapture(graph)
    capture.received_file(file, len(raw), "alice@example.com", "imap-fetch")
    await capture.flush()
    assert file.closed
    worker = IngestWorker(graph, processes=1)
    try:
        assert await worker.drain()
    finally:
        worker.close()
    assert team_counts(graph) == {"jane@globex.com": (0, 1)}
    with graph.store.read() as conn:
        assert conn.execute("SELECT size FROM messages").fetchone()[0] == len(raw)
