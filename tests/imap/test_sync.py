"""History sync against the real Dovecot: backfill once, resume, UIDVALIDITY, retries, the hook.

Each test has its own Dovecot user and its own graph database. Mail is seeded with pipelined
``APPEND``s using LITERAL+ (RFC 7888), one round trip per chunk, so thousands of messages take
seconds.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import sqlite3
from collections.abc import Iterator, Sequence
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from relayproxy import metrics
from relayproxy.capture import MemoryCapture
from relayproxy.config import Settings, parse
from relayproxy.graph import Graph
from relayproxy.graph.sync_state import GraphSyncStore, MailboxProgress
from relayproxy.imap import sync as sync_module
from relayproxy.imap.relay import ImapProxy
from relayproxy.imap.sync import HistorySync, SyncReport, credentials_from_client, sequence_set
from tests.imap.peers import proxy_settings
from tests.peers.dovecot import Dovecot

# --- helpers ---------------------------------------------------------------------------------


def mail(index: int, sender: str, to: str, tag: str, size: int = 1200) -> bytes:
    """A small plain message with a unique Message-ID."""
    from datetime import UTC, datetime, timedelta

    date = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=index)
    body = ("Let us talk about the budget for next quarter. " * (size // 48)).encode()
    return (
        f"From: Person {index % 40} <{sender}>\r\nTo: {to}\r\nSubject: {tag} {index}\r\n"
        f"Date: {format_datetime(date)}\r\nMessage-ID: <{tag}.{index}@globex.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode() + body + b"\r\n"


def inbox_mail(login: str, count: int, tag: str = "in") -> list[bytes]:
    return [mail(i, f"person{i % 40}@globex.com", login, tag) for i in range(count)]


def sent_mail(login: str, count: int, tag: str = "out") -> list[bytes]:
    return [mail(i, login, f"person{i % 40}@globex.com", tag) for i in range(count)]


def bulk_append(dovecot: Dovecot, login: str, mailbox: str, messages: Sequence[bytes], chunk: int = 250) -> None:
    """APPEND many messages fast: pipelined, LITERAL+, one round trip per `chunk`."""
    client = dovecot.imap(login)
    try:
        client.select(mailbox)
        quoted = b'"' + mailbox.encode() + b'"'
        for start in range(0, len(messages), chunk):
            part = messages[start : start + chunk]
            client.send(b"".join(
                b"P%d APPEND %s {%d+}\r\n" % (start + i, quoted, len(raw)) + raw + b"\r\n"
                for i, raw in enumerate(part)
            ))
            answered = 0
            while answered < len(part):
                line = client.readline()
                if line.startswith(b"P"):
                    assert line.split()[1] == b"OK", line
                    answered += 1
    finally:
        client.logout()


def sync_settings(dovecot: Dovecot, tmp_path: Path, login: str, security: str = "tls") -> Settings:
    port = {"tls": dovecot.tls_port, "starttls": dovecot.port, "none": dovecot.port}[security]
    return parse({
        "storage": {"database": str(tmp_path / "graph.db"), "blobs": str(tmp_path / "blobs")},
        "imap": {"listen": "127.0.0.1:0", "upstream": f"localhost:{port}", "upstream_security": security},
        "tls": {"upstream_ca": str(dovecot.ca)},
        "team": {"domains": ["example.com"], "members": [{"login": login, "addresses": [login]}]},
    })


def counts(graph: Graph) -> dict[str, int]:
    with graph.store.read() as conn:
        one = lambda sql: int(conn.execute(sql).fetchone()[0])  # noqa: E731
        return {
            "messages": one("SELECT count(*) FROM messages"),
            "with_body": one("SELECT count(*) FROM messages WHERE has_body = 1"),
            "copies": one("SELECT count(*) FROM copies"),
            "interactions": one("SELECT count(*) FROM interactions"),
            "exchanged": one("SELECT coalesce(sum(sent + received), 0) FROM stats"),
        }


@pytest.fixture
def user(dovecot: Dovecot) -> tuple[str, str]:
    return dovecot.new_user("sync")


@pytest.fixture
def graph(dovecot: Dovecot, tmp_path: Path, user: tuple[str, str]) -> Iterator[Graph]:
    g = Graph(sync_settings(dovecot, tmp_path, user[0]), durable=False)
    yield g
    g.close()


def history(graph: Graph, store: Any = None, **kwargs: Any) -> HistorySync:
    kwargs.setdefault("bytes_per_second", None)
    kwargs.setdefault("messages_per_second", None)
    kwargs.setdefault("backoff", 0.05)
    return HistorySync(graph.settings, store or GraphSyncStore(graph), **kwargs)


# --- backfill --------------------------------------------------------------------------------


async def test_three_thousand_messages_in_inbox_and_sent_reach_the_graph_once(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", inbox_mail(login, 2000))
    await asyncio.to_thread(bulk_append, dovecot, login, "Sent", sent_mail(login, 1000))

    report = await history(graph).sync(login, login, password)

    assert report.finished and report.error is None
    assert set(report.mailboxes) == {"INBOX", "Sent"}
    assert report.total("headers") == 3000 and report.total("bodies") == 3000 and report.total("new") == 3000
    assert counts(graph) == {"messages": 3000, "with_body": 3000, "copies": 3000,
                             "interactions": 3000, "exchanged": 3000}
    with graph.store.read() as conn:
        sent, received = conn.execute("SELECT sum(sent), sum(received) FROM stats").fetchone()
    assert (sent, received) == (1000, 2000)

    again = await history(graph).sync(login, login, password)  # a re-run adds nothing
    assert again.finished and again.total("headers") == 0 and again.total("bodies") == 0
    assert counts(graph)["messages"] == 3000 and counts(graph)["exchanged"] == 3000


async def test_starttls_upstream_and_a_message_the_proxy_captured_is_not_counted_twice(
    dovecot: Dovecot, tmp_path: Path, user: tuple[str, str]
) -> None:
    login, password = user
    messages = inbox_mail(login, 20, tag="dup")
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", messages)
    graph = Graph(sync_settings(dovecot, tmp_path, login, "starttls"), durable=False)
    try:
        graph.ingest_raw(messages[0], login, "imap-fetch")  # read through the proxy before
        report = await history(graph).sync(login, login, password)
        assert report.finished and report.total("bodies") == 20 and report.total("new") == 19
        assert counts(graph)["messages"] == 20 and counts(graph)["exchanged"] == 20
    finally:
        graph.close()


async def test_headers_first_then_bodies_complete_the_same_messages(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", inbox_mail(login, 30))
    await history(graph, bodies=False).sync(login, login, password)
    assert counts(graph)["messages"] == 30 and counts(graph)["with_body"] == 0

    report = await history(graph).sync(login, login, password)
    assert report.total("headers") == 0 and report.total("bodies") == 30 and report.total("new") == 0
    assert counts(graph)["with_body"] == 30 and counts(graph)["exchanged"] == 30


# --- resuming, UIDVALIDITY -------------------------------------------------------------------


class Interrupting:
    """The real store; the sync task is cancelled (a stop, a crash) after `after` batches."""

    def __init__(self, inner: GraphSyncStore, after: int) -> None:
        self.inner = inner
        self.after = after
        self.batches = 0
        self.task: asyncio.Task[SyncReport] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def ingest(self, *args: Any, **kwargs: Any) -> int:
        new = await self.inner.ingest(*args, **kwargs)
        self.batches += 1
        if self.batches == self.after and self.task is not None:
            self.task.cancel()
        return new


async def test_an_interrupted_sync_resumes_where_it_stopped(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", inbox_mail(login, 300))
    store = Interrupting(GraphSyncStore(graph), after=6)  # 3 header batches of 100, then 3 of bodies
    first = history(graph, store, header_batch=100, body_batch=20)
    store.task = first.start(login, login, password)
    with pytest.raises(asyncio.CancelledError):
        await store.task
    progress: MailboxProgress = GraphSyncStore(graph).progress(login)[0]
    assert progress.headers_uid == 300 and 0 < progress.bodies_uid < 300
    assert progress.status == "failed" and progress.error == "stopped"
    done = progress.bodies_uid

    report = await history(graph, header_batch=100, body_batch=20).sync(login, login, password)
    assert report.finished
    assert report.total("headers") == 0 and report.total("bodies") == 300 - done
    assert counts(graph) == {"messages": 300, "with_body": 300, "copies": 300,
                             "interactions": 300, "exchanged": 300}
    assert GraphSyncStore(graph).progress(login)[0].status == "done"


async def test_a_new_uidvalidity_restarts_that_mailbox(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    old = sent_mail(login, 10, tag="old")
    await asyncio.to_thread(bulk_append, dovecot, login, "Sent", old)
    await history(graph).sync(login, login, password)
    before = GraphSyncStore(graph).progress(login)

    def recreate() -> None:
        client = dovecot.imap(login)
        assert client.delete("Sent")[0] == "OK"
        assert client.create("Sent")[0] == "OK"
        client.logout()

    await asyncio.to_thread(recreate)
    await asyncio.to_thread(bulk_append, dovecot, login, "Sent", old[:3] + sent_mail(login, 2, tag="new"))
    report = await history(graph).sync(login, login, password)

    sent = report.mailboxes["Sent"]
    assert sent.restarted and sent.bodies == 5 and sent.new == 2
    after = {p.mailbox: p for p in GraphSyncStore(graph).progress(login)}
    assert after["Sent"].uidvalidity != {p.mailbox: p for p in before}["Sent"].uidvalidity
    assert after["Sent"].bodies_uid == 5
    assert counts(graph)["messages"] == 12 and counts(graph)["exchanged"] == 12


# --- failures --------------------------------------------------------------------------------


async def test_a_refused_sign_in_stops_with_the_reason_and_is_not_retried(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, _ = user
    report = await history(graph, retries=3).sync(login, login, "wrong password")
    assert not report.finished and report.attempts == 1
    assert report.error is not None and "refused the member's sign-in" in report.error
    assert "wrong password" not in report.error


class Cutter:
    """A TCP relay to Dovecot that cuts the first connection after `limit` bytes from the server."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.connections == 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limited: bool) -> None:
            sent = 0
            while data := await src.read(65536):
                if limited and sent + len(data) > self.limit:
                    dst.write(data[: self.limit - sent])
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                sent += len(data)
                dst.write(data)
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, cut),
                             return_exceptions=True)


async def test_a_lost_connection_mid_fetch_is_retried_and_the_sync_completes(
    dovecot: Dovecot, tmp_path: Path, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", inbox_mail(login, 200))
    cutter = Cutter(dovecot.port, limit=120_000)
    port = await cutter.start()
    settings = sync_settings(dovecot, tmp_path, login, "none")
    graph = Graph(settings, durable=False)
    try:
        import dataclasses

        from relayproxy.config import HostPort

        graph.settings = dataclasses.replace(
            settings, imap=dataclasses.replace(settings.imap, upstream=HostPort("127.0.0.1", port))
        )
        errors = metrics.value("sync_errors_total", reason="Abort")
        report = await history(graph, header_batch=50, body_batch=20).sync(login, login, password)
        assert report.finished and report.attempts == 2 and cutter.connections == 2
        assert metrics.value("sync_errors_total", reason="Abort") == errors + 1
        assert counts(graph)["with_body"] == 200 and counts(graph)["exchanged"] == 200
    finally:
        graph.close()
        assert cutter.server is not None
        cutter.server.close()


# --- aioimaplib's known issues ---------------------------------------------------------------


def test_a_fetch_response_of_thousands_of_lines_in_one_read_does_not_recurse() -> None:
    """aioimaplib #118: one read holding 5,000 header literals (10,000+ lines)."""

    async def run() -> list[tuple[int, bytes]]:
        protocol = sync_module._Protocol(asyncio.get_running_loop())
        protocol.state = "SELECTED"
        command = sync_module._FetchCommand("A1", "1:5000", "(UID BODY.PEEK[HEADER])", prefix="UID")
        protocol.pending_async_commands["FETCH"] = command
        header = b"From: a@b.c\r\nSubject: hi\r\n\r\n"
        data = b"".join(b"* %d FETCH (UID %d BODY[HEADER] {%d}\r\n" % (i, i, len(header)) + header + b")\r\n"
                        for i in range(1, 5001)) + b"A1 OK Fetch completed.\r\n"
        for start in range(0, len(data), 70_000):  # and split at arbitrary places
            protocol.data_received(data[start : start + 70_000])
        await asyncio.wait_for(command.wait(), 1)
        return sync_module.fetched_messages(command.response.lines)

    got = asyncio.run(run())
    assert [uid for uid, _ in got] == list(range(1, 5001))
    assert all(raw.endswith(b"\r\n\r\n") for _, raw in got)


def test_a_lost_connection_wakes_pending_commands_with_abort() -> None:
    """aioimaplib #110: a BYE and a close must not leave a command (IDLE) waiting forever."""

    async def run() -> None:
        import aioimaplib

        protocol = sync_module._Protocol(asyncio.get_running_loop())
        command = aioimaplib.IdleCommand("A2", asyncio.Queue())
        protocol.pending_sync_command = command
        protocol.data_received(b"* BYE server shutting down\r\n")
        protocol.connection_lost(None)
        with pytest.raises(aioimaplib.Abort):
            await asyncio.wait_for(command.wait(), 1)

    asyncio.run(run())


# --- credentials, and the proxy's hook -------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a1 LOGIN alice secret\r\n", ("alice", "secret")),
        (b'a1 CAPABILITY\r\na2 LOGIN "al ice" "se\\"cr\\\\et"\r\n', ("al ice", 'se"cr\\et')),
        (b"a1 LOGIN {5}\r\nalice {7}\r\nsecr\xc3\xa9t\r\n", ("alice", "secr\u00e9t")),
        (b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", ("alice", "secret")),
        (b"a1 AUTHENTICATE PLAIN " + base64.b64encode(b"\0alice\0pw") + b"\r\n", ("alice", "pw")),
        (b"a1 AUTHENTICATE PLAIN\r\n" + base64.b64encode(b"alice\0alice\0pw") + b"\r\n", ("alice", "pw")),
        (b"a1 AUTHENTICATE PLAIN " + base64.b64encode(b"admin\0alice\0pw") + b"\r\n", None),
        (b"a1 AUTHENTICATE XOAUTH2 dXNlcj1h\r\n", None),
        (b"a1 LOGIN alice wrong\r\na2 LOGIN alice right\r\n", ("alice", "right")),
    ],
)
def test_credentials_are_read_from_the_client_sign_in(data: bytes, expected: tuple[str, str] | None) -> None:
    assert credentials_from_client(data) == expected


def test_sequence_sets_are_compact() -> None:
    assert sequence_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
async def test_the_proxy_calls_on_login_with_the_session_credentials(
    dovecot: Dovecot, user: tuple[str, str], mechanism: str
) -> None:
    login, password = user
    settings = proxy_settings(f"localhost:{dovecot.tls_port}", "tls", ca=dovecot.ca, members=[login])
    proxy = ImapProxy(settings, MemoryCapture())
    seen: list[tuple[str, str, str]] = []
    proxy.on_login = lambda member, username, secret: seen.append((member, username, secret))
    await proxy.start()
    try:
        port = proxy.port
        assert port is not None

        def session() -> None:
            client = imaplib.IMAP4("127.0.0.1", port)
            if mechanism == "LOGIN":
                client.login(login, password)
            else:
                client.authenticate("PLAIN", lambda _: f"\0{login}\0{password}".encode())
            client.logout()

        await asyncio.to_thread(session)
    finally:
        await proxy.close()
    assert seen == [(login, login, password)]


async def test_on_login_starts_one_sync_per_member(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(bulk_append, dovecot, login, "INBOX", inbox_mail(login, 5))
    sync = history(graph)
    sync.on_login(login, login, password)
    sync.on_login(login, login, password)  # a second session while it runs: no second sync
    report = await sync.wait(login)
    assert report is not None and report.finished and report.total("new") == 5
    sync.on_login(login, login, password)  # done in this process: not again
    assert not sync.running(login)
    with sqlite3.connect(graph.settings.storage.database) as conn:
        assert conn.execute("SELECT count(*) FROM sync_state WHERE status = 'done'").fetchone()[0] == 2


# --- in `relayproxy serve` -------------------------------------------------------------------


def test_serve_backfills_a_member_on_first_sign_in_and_shows_it_in_metrics(
    dovecot: Dovecot, certs: Any, tmp_path: Path, user: tuple[str, str]
) -> None:
    import time
    import urllib.request

    from tests.e2e.system import Serve, running, write_config

    login, password = user
    bulk_append(dovecot, login, "INBOX", inbox_mail(login, 40, tag="serve"))
    bulk_append(dovecot, login, "Sent", sent_mail(login, 10, tag="serve-out"))
    serve = Serve(tmp_path, write_config(tmp_path, certs, {login: password}, 9, dovecot))  # type: ignore[arg-type]
    with running(serve):
        settings = serve.settings
        client = imaplib.IMAP4(settings.imap.listen.host, settings.imap.listen.port)
        client.login(login, password)  # signs in and leaves: the sync goes on without the client
        client.logout()
        deadline = time.monotonic() + 30
        while True:
            with sqlite3.connect(settings.storage.database) as conn:
                done = conn.execute("SELECT count(*) FROM sync_state WHERE status = 'done'").fetchone()[0]
                bodies = conn.execute("SELECT count(*) FROM messages WHERE has_body = 1").fetchone()[0]
            if done == 2 and bodies == 50:
                break
            assert time.monotonic() < deadline, (done, bodies)
            time.sleep(0.1)  # another process: polling the database is the only signal
        web = settings.web_listen
        with urllib.request.urlopen(f"http://{web.host}:{web.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    assert 'relayproxy_sync_messages_total{phase="bodies"} 50' in text
    assert 'relayproxy_sync_runs_total{outcome="done"} 1' in text
    assert "relayproxy_sync_pending_messages 0.0" in text
    assert password not in (tmp_path / "serve.log").read_text()


# --- throttling ------------------------------------------------------------------------------


async def test_the_throttle_waits_while_a_client_pulls_mail_but_not_for_ever() -> None:
    import time

    answers = iter([True, True, True, False])
    throttle = sync_module.Throttle(None, None, busy=lambda: next(answers, False), max_yield=5)
    started = time.monotonic()
    await throttle.spend(1000, 1)
    assert 0.1 <= time.monotonic() - started < 1  # three looks of 50 ms, then on

    stubborn = sync_module.Throttle(None, None, busy=lambda: True, max_yield=0.2)
    started = time.monotonic()
    await stubborn.spend(1000, 1)
    assert 0.2 <= time.monotonic() - started < 1  # a busy client slows the sync, never stops it


async def test_relay_activity_follows_the_relay_counter() -> None:
    activity = sync_module.RelayActivity()
    assert not activity()
    metrics.inc("messages_relayed_total", protocol="imap")
    assert activity() and not activity()


async def test_the_token_bucket_paces_bytes() -> None:
    import time

    throttle = sync_module.Throttle(1_000_000, None, burst=0)
    started = time.monotonic()
    for _ in range(3):
        await throttle.spend(100_000, 10)
    assert time.monotonic() - started >= 0.25
