"""Continuous sync against the real Dovecot: IDLE captures new mail, survives a dropped
connection, resumes where it stopped, and stops (saying why) when the password is refused."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from relayproxy import metrics
from relayproxy.config import HostPort
from relayproxy.graph import Graph
from relayproxy.graph.watch_state import GraphWatchStore
from relayproxy.imap.watch import MailWatch
from tests.imap.test_sync import mail, sync_settings
from tests.peers.dovecot import Dovecot

WAIT = 5.0  # seconds a condition may take before the test fails (it takes well under one)


@pytest.fixture
def user(dovecot: Dovecot) -> tuple[str, str]:
    return dovecot.new_user("watch")


@pytest.fixture
def graph(dovecot: Dovecot, tmp_path: Path, user: tuple[str, str]) -> Iterator[Graph]:
    g = Graph(sync_settings(dovecot, tmp_path, user[0]), durable=False)
    yield g
    g.close()


def watcher(graph: Graph, **kwargs: object) -> MailWatch:
    kwargs.setdefault("backoff", 0.05)
    kwargs.setdefault("timeout", 10.0)
    return MailWatch(graph.settings, GraphWatchStore(graph), **kwargs)  # type: ignore[arg-type]


def subjects(graph: Graph) -> set[str]:
    with graph.store.read() as conn:
        return {row[0] for row in conn.execute("SELECT subject FROM messages")}


async def watching(watch: MailWatch, member: str) -> None:
    await watch.wait_until(lambda: bool(watch.status(member))
                           and all(b.state == "watching" for b in watch.status(member)), WAIT)


async def captured(watch: MailWatch, member: str, count: int) -> None:
    await watch.wait_until(lambda: sum(b.captured for b in watch.status(member)) >= count, WAIT)


async def test_mail_delivered_while_watching_reaches_the_graph_within_a_second(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    await asyncio.to_thread(dovecot.deliver, login, mail(0, "old@globex.com", login, "before"))
    watch = watcher(graph)
    await watch.start(login, login, password)
    try:
        await watching(watch, login)
        assert {b.mailbox for b in watch.status(login)} == {"INBOX", "Sent"}
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(dovecot.deliver, login, mail(1, "new@globex.com", login, "idle"))
        delivered = loop.time()
        await captured(watch, login, 1)
        # The issue asks for "captured within a second"; Dovecot itself holds IDLE pushes ~0.5 s.
        assert loop.time() - delivered < 1.0
        await asyncio.to_thread(dovecot.append, login, [mail(2, login, "pal@globex.com", "sent")], "Sent")
        await captured(watch, login, 2)
    finally:
        await watch.stop()
    # mail from before the watch started is the history sync's, not the watcher's
    assert subjects(graph) == {"idle 1", "sent 2"}
    with graph.store.read() as conn:
        assert {r[0] for r in conn.execute("SELECT DISTINCT source FROM copies")} == {"watch"}
        assert conn.execute("SELECT sum(sent), sum(received) FROM stats").fetchone() == (1, 1)
    assert not watch.watching(login)


async def test_a_stopped_watcher_resumes_after_the_last_message_it_read(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    watch = watcher(graph, roles=("INBOX",))
    await watch.start(login, login, password)
    await watching(watch, login)
    await asyncio.to_thread(dovecot.deliver, login, mail(1, "a@globex.com", login, "first"))
    await captured(watch, login, 1)
    await watch.stop_member(login)
    assert watch.status(login) == []
    await asyncio.to_thread(dovecot.deliver, login, mail(2, "b@globex.com", login, "meanwhile"))

    again = watcher(graph, roles=("INBOX",))
    await again.start(login, login, password)
    try:
        await captured(again, login, 1)
    finally:
        await again.stop()
    assert subjects(graph) == {"first 1", "meanwhile 2"}


async def test_a_refused_password_stops_the_watcher_and_says_so(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, _ = user
    errors = metrics.value("watch_errors_total", reason="signin")
    watch = watcher(graph, roles=("INBOX",))
    await watch.start(login, login, "a wrong password")
    try:
        await watch.wait_until(lambda: watch.status(login)[0].state == "stopped", WAIT)
        [box] = watch.status(login)
        assert box.error is not None and "refused the member's sign-in" in box.error and "not retried" in box.error
        assert "a wrong password" not in box.error and box.failures == 0
        assert metrics.value("watch_errors_total", reason="signin") == errors + 1
        assert "relayproxy_watch_failing 1.0" in metrics.render()
    finally:
        await watch.stop()


class Dropper:
    """A TCP relay to Dovecot whose `drop()` says ``* BYE`` to each client and closes, as a
    restarting server does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.open: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.open.append((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    def drop(self) -> None:
        for client, upstream in self.open:
            client.write(b"* BYE Server shutting down.\r\n")
            client.transport.abort()
            upstream.transport.abort()
        self.open.clear()


async def test_after_the_server_drops_the_connection_the_watcher_reconnects_and_catches_up(
    dovecot: Dovecot, graph: Graph, user: tuple[str, str]
) -> None:
    login, password = user
    dropper = Dropper(dovecot.port)
    port = await dropper.start()
    settings = dataclasses.replace(graph.settings, imap=dataclasses.replace(
        graph.settings.imap, upstream=HostPort("127.0.0.1", port), upstream_security="none"))
    watch = MailWatch(settings, GraphWatchStore(graph), roles=("INBOX",), backoff=0.3, timeout=10.0)
    errors = sum(metrics.value("watch_errors_total", reason=r) for r in ("Abort", "ConnectionError"))
    await watch.start(login, login, password)
    try:
        await watching(watch, login)
        dropper.drop()  # BYE during IDLE, then the connection is gone
        await watch.wait_until(lambda: watch.status(login)[0].state == "retrying", WAIT)
        [box] = watch.status(login)
        assert box.error and "closed the connection" in box.error, box.error
        await asyncio.to_thread(dovecot.deliver, login, mail(1, "c@globex.com", login, "while-down"))
        await watching(watch, login)
        await captured(watch, login, 1)
        assert dropper.connections == 2 and box.failures == 0 and box.error is None
        assert sum(metrics.value("watch_errors_total", reason=r) for r in ("Abort", "ConnectionError")) == errors + 1
        await asyncio.to_thread(dovecot.deliver, login, mail(2, "d@globex.com", login, "after"))
        await captured(watch, login, 2)
    finally:
        await watch.stop()
        assert dropper.server is not None
        dropper.server.close()
    assert subjects(graph) == {"while-down 1", "after 2"}


# --- in `relayproxy serve` -------------------------------------------------------------------


def test_serve_watches_an_opted_in_member_and_resumes_the_watch_after_a_restart(
    dovecot: Dovecot, certs: object, tmp_path: Path, user: tuple[str, str]
) -> None:
    import re
    import sqlite3
    import time

    import httpx
    from cryptography.fernet import Fernet

    from tests.e2e.system import Serve, running, write_config

    login, password = user
    path = write_config(tmp_path, certs, {login: password}, 9, dovecot)  # type: ignore[arg-type]
    (tmp_path / "sync.key").write_text(Fernet.generate_key().decode())
    path.write_text(path.read_text().replace("[team]", f'[sync]\nkey_file = "{tmp_path}/sync.key"\n[team]'))
    serve = Serve(tmp_path, path)

    def subjects() -> set[str]:
        with sqlite3.connect(serve.settings.storage.database) as conn:
            return {row[0] for row in conn.execute("SELECT subject FROM messages")}

    def until(condition: object, what: str) -> None:
        deadline = time.monotonic() + 10
        while not condition():  # type: ignore[operator]
            assert time.monotonic() < deadline, what
            time.sleep(0.05)  # another process: polling is the only signal

    def metrics_text() -> str:
        web = serve.settings.web_listen
        return httpx.get(f"http://{web.host}:{web.port}/metrics", timeout=5).text

    with running(serve):
        web = serve.settings.web_listen
        with httpx.Client(base_url=f"http://{web.host}:{web.port}", timeout=10) as site:
            token = re.search(r'name="csrf_token" value="([^"]+)"', site.get("/login").text)
            assert token is not None
            site.post("/login", data={"username": login, "password": password, "csrf_token": token.group(1)})
            page = site.get("/settings").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token is not None and "Turn continuous sync on" in page
            answer = site.post("/settings/continuous", data={"password": password, "csrf_token": token.group(1)})
            assert answer.status_code == 303, answer.text
            until(lambda: "relayproxy_watch_connections 2.0" in metrics_text(), "INBOX and Sent watched")
            dovecot.deliver(login, mail(1, "x@globex.com", login, "live"))
            until(lambda: "live 1" in subjects(), "captured while watching")
        started = time.monotonic()
    assert serve.process is not None and serve.process.returncode == 0
    assert time.monotonic() - started < 5  # the watchers do not hold up the stop

    dovecot.deliver(login, mail(2, "y@globex.com", login, "while-stopped"))
    with running(serve):
        until(lambda: "while-stopped 2" in subjects(), "the watch resumed after the restart")
    log = (tmp_path / "serve.log").read_text()
    assert password not in log and "continuous sync" in log
    database = Path(serve.settings.storage.database)
    stored = b"".join(p.read_bytes() for p in database.parent.iterdir() if p.name.startswith(database.name))
    assert password.encode() not in stored
