"""Continuous sync on the settings page, against the real Dovecot: opting in stores the password
sealed and starts IDLE watchers that capture new mail; opting out deletes it and stops them; no
key means a refusal that says how to make one; serve's start resumes the watchers."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from relayproxy import metrics
from relayproxy.continuous import ContinuousSync
from relayproxy.graph import Graph
from relayproxy.graph.watch_state import GraphWatchStore
from relayproxy.imap.watch import MailWatch
from relayproxy.web.app import create_app
from tests.imap.test_sync import mail, sync_settings
from tests.peers.dovecot import Dovecot
from tests.web.conftest import csrf_of

WAIT = 5.0


@pytest.fixture
def member(dovecot: Dovecot) -> tuple[str, str]:
    return dovecot.new_user("cont")


@pytest.fixture
def site_graph(dovecot: Dovecot, tmp_path: Path, member: tuple[str, str]) -> Iterator[Graph]:
    g = Graph(sync_settings(dovecot, tmp_path, member[0]), durable=False)
    yield g
    g.close()


def continuous(graph: Graph, key: str | None) -> ContinuousSync:
    watch = MailWatch(graph.settings, GraphWatchStore(graph), roles=("INBOX",), backoff=0.05, timeout=10.0)
    return ContinuousSync(graph.settings, graph, watch, environ={"RELAYPROXY_SYNC_KEY": key} if key else {})


@contextlib.asynccontextmanager
async def signed_in(
    dovecot: Dovecot, graph: Graph, sync: ContinuousSync, login: str
) -> AsyncIterator[httpx.AsyncClient]:
    async def check(username: str, password: str) -> bool:
        return dovecot.passwords.get(username) == password

    app = create_app(graph.settings, graph, check, continuous=sync)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        token = csrf_of((await client.get("/login")).text)
        response = await client.post("/login", data={"username": login, "password": dovecot.passwords[login],
                                                     "csrf_token": token})
        assert response.status_code == 303, response.text
        yield client


@pytest.fixture
async def stopping() -> AsyncIterator[list[ContinuousSync]]:
    started: list[ContinuousSync] = []
    yield started
    for sync in started:
        await sync.stop()


def database_bytes(graph: Graph) -> bytes:
    database = Path(graph.settings.storage.database)
    return b"".join(p.read_bytes() for p in database.parent.iterdir() if p.name.startswith(database.name))


async def test_opting_in_watches_the_inbox_and_opting_out_forgets_the_password(
    dovecot: Dovecot, site_graph: Graph, member: tuple[str, str], stopping: list[ContinuousSync]
) -> None:
    import asyncio

    login, password = member
    sync = continuous(site_graph, Fernet.generate_key().decode())
    stopping.append(sync)
    async with signed_in(dovecot, site_graph, sync, login) as client:
        page = await client.get("/settings")
        assert "Turn continuous sync on" in page.text
        token = csrf_of(page.text)
        wrong = await client.post("/settings/continuous", data={"password": "nope", "csrf_token": token})
        assert wrong.status_code == 422 and not sync.watch.watching(login)
        right = await client.post("/settings/continuous", data={"password": password, "csrf_token": token})
        assert right.status_code == 303 and sync.watch.watching(login)
        await sync.watch.wait_until(lambda: sync.watch.status(login)[0].state == "watching", WAIT)

        await asyncio.to_thread(dovecot.deliver, login, mail(1, "jane@globex.com", login, "while-closed"))
        await sync.watch.wait_until(lambda: sync.watch.status(login)[0].captured == 1, WAIT)
        with site_graph.store.read() as conn:
            assert conn.execute("SELECT subject FROM messages").fetchall() == [("while-closed 1",)]
        page = await client.get("/settings")
        assert "watching" in page.text and "Turn continuous sync off" in page.text and password not in page.text
        assert password.encode() not in database_bytes(site_graph)
        with sqlite3.connect(site_graph.settings.storage.database) as conn:
            assert conn.execute("SELECT count(*) FROM sync_credentials").fetchone()[0] == 1

        # The stored password can be replaced in place (after a change at the provider): one
        # credential still, and the watchers restart with it.
        assert "Update the stored password" in page.text
        updated = await client.post("/settings/continuous", data={"password": password, "csrf_token": token})
        assert updated.status_code == 303 and sync.watch.watching(login)
        await sync.watch.wait_until(lambda: sync.watch.status(login)[0].state == "watching", WAIT)
        with sqlite3.connect(site_graph.settings.storage.database) as conn:
            assert conn.execute("SELECT count(*) FROM sync_credentials").fetchone()[0] == 1

        off = await client.post("/settings/continuous/off", data={"csrf_token": token})
        assert off.status_code == 303 and not sync.watch.watching(login) and sync.watch.status(login) == []
        with sqlite3.connect(site_graph.settings.storage.database) as conn:
            assert conn.execute("SELECT count(*) FROM sync_credentials").fetchone()[0] == 0
        assert "Turn continuous sync on" in (await client.get("/settings")).text


async def test_without_a_key_opting_in_is_refused_with_how_to_set_one(
    dovecot: Dovecot, site_graph: Graph, member: tuple[str, str], stopping: list[ContinuousSync]
) -> None:
    login, password = member
    sync = continuous(site_graph, None)
    stopping.append(sync)
    async with signed_in(dovecot, site_graph, sync, login) as client:
        page = await client.get("/settings")
        assert "Not available yet" in page.text and "sync.key_file" in page.text
        token = csrf_of(page.text)
        refused = await client.post("/settings/continuous", data={"password": password, "csrf_token": token})
    assert refused.status_code == 422
    assert "Fernet.generate_key()" in refused.text and "sync.key_file" in refused.text
    assert not sync.watch.watching(login)
    with sqlite3.connect(site_graph.settings.storage.database) as conn:
        assert conn.execute("SELECT count(*) FROM sync_credentials").fetchone()[0] == 0


async def test_at_start_stored_credentials_resume_and_a_changed_key_is_shown(
    dovecot: Dovecot, site_graph: Graph, member: tuple[str, str], stopping: list[ContinuousSync]
) -> None:
    login, password = member
    key = Fernet.generate_key().decode()
    first = continuous(site_graph, key)
    stopping.append(first)
    await first.opt_in(login, login, password)
    await first.stop()  # serve stops; the credential stays

    restarted = continuous(site_graph, key)
    stopping.append(restarted)
    assert await restarted.resume() == 1
    await restarted.watch.wait_until(lambda: restarted.watch.status(login)[0].state == "watching", WAIT)
    await restarted.stop()

    errors = metrics.value("watch_errors_total", reason="key")
    changed = continuous(site_graph, Fernet.generate_key().decode())
    stopping.append(changed)
    assert await changed.resume() == 0 and not changed.watch.watching(login)
    assert metrics.value("watch_errors_total", reason="key") == errors + 1
    async with signed_in(dovecot, site_graph, changed, login) as client:
        page = (await client.get("/settings")).text
    assert "cannot be decrypted with the key from the environment variable RELAYPROXY_SYNC_KEY" in page
    assert "Turn continuous sync off" in page


async def test_a_member_removed_from_the_config_stops_being_watched(
    dovecot: Dovecot, site_graph: Graph, member: tuple[str, str], stopping: list[ContinuousSync]
) -> None:
    import dataclasses

    login, password = member
    sync = continuous(site_graph, Fernet.generate_key().decode())
    stopping.append(sync)
    await sync.opt_in(login, login, password)
    assert sync.watch.watching(login)
    others = tuple(m for m in site_graph.settings.members if m.login != login)
    await sync.apply(dataclasses.replace(site_graph.settings, members=others))
    assert not sync.watch.watching(login)
    assert (await sync.status(login)).opted_in  # the credential stays until they opt out
