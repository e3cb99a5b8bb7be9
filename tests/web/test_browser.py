"""Real-browser tests: headless Chromium (Debian's) via Playwright, against uvicorn on port 0.

One server and one browser for the whole module; each test gets a fresh page (and cookies).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from relayproxy.graph import Graph
from relayproxy.graph.views import Views
from relayproxy.web.app import create_app
from tests.graph import mixed
from tests.web.conftest import NOW, PASSWORDS, dict_login_check, make_settings

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

HOSTILE = b"""From: "<img src=x onerror=window.__xss=2>Mallory" <mallory@evil.example.org>
To: Alice Example <alice@example.com>
Subject: <script>window.__xss=1</script>Quarterly numbers
Date: Wed, 14 Jan 2026 10:00:00 +0000
Message-ID: <hostile@evil.example.org>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><body><p>Hello</p><script>window.__xss=3</script>
<img src="x" onerror="window.__xss=4"><a href="javascript:window.__xss=5">click</a>
<iframe src="javascript:window.__xss=6"></iframe></body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Graph]]:
    tmp: Path = tmp_path_factory.mktemp("browser")
    settings = make_settings(tmp)
    graph = Graph(settings, durable=False)
    for raw in mixed.MESSAGES:
        graph.ingest_raw(raw, "alice@example.com", "import", now=NOW)
    graph.ingest_raw(HOSTILE, "alice@example.com", "import", now=NOW)
    site = create_app(settings, graph, dict_login_check, views=Views(now=lambda: NOW))
    app = Starlette(routes=[Mount("/", site)])  # mounted, as `relayproxy serve` does (no sub-app lifespan)
    sock = socket.socket(
        socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # IPPROTO_TCP: asyncio sets TCP_NODELAY only then
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # uvicorn offers no event to wait on
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", graph
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        graph.close()


@pytest.fixture(scope="module")
def browser(site: tuple[str, Graph]) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, site: tuple[str, Graph]) -> Iterator[Any]:
    context = browser.new_context(base_url=site[0])
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.set_default_timeout(5000)
    yield page
    context.close()
    assert dialogs == [], f"a script opened a dialog: {dialogs}"


def sign_in(page: Any, login: str = "alice@example.com") -> None:
    page.goto("/login")
    page.fill("input[name=username]", login)
    page.fill("input[name=password]", PASSWORDS[login])
    page.click("button[type=submit]")
    page.wait_for_url("**/")


def test_sign_in_search_and_open_a_person(page: Any) -> None:
    page.goto("/people")
    page.wait_for_url("**/login?next=/people")
    sign_in(page)
    page.goto("/people")
    page.fill("input[name=q]", "globex")
    page.click(".filters button[type=submit]")
    page.wait_for_url("**/people?q=globex*")
    rows = page.locator("tr.person")
    assert rows.count() == 2
    page.click("text=Jane Döe")
    page.wait_for_url("**/people/*")
    assert page.locator("h1.person-name").inner_text().startswith("Jane Döe")
    assert "jane@globex.com" in page.locator(".facts").inner_text()


def test_a_live_update_arrives_without_reload(page: Any, site: tuple[str, Graph]) -> None:
    _, graph = site
    sign_in(page)
    page.goto("/people?sort=name")
    # A selector, not wait_for_function: polling a JS predicate needs eval, which our CSP forbids.
    page.wait_for_selector("html[data-live=open]", state="attached")
    page.evaluate("window.__same_document = true")
    assert page.locator("text=Zara Live").count() == 0
    result = graph.ingest_raw(
        b"From: Zara Live <zara@newco.example.net>\nTo: alice@example.com\nSubject: Hello there\n"
        b"Message-ID: <live@newco.example.net>\nDate: Thu, 15 Jan 2026 10:00:00 +0000\n\nHi!\n",
        "alice@example.com",
        "smtp",
    )
    graph.announce([result])  # what the ingest worker does after each batch
    page.wait_for_selector("text=Zara Live")
    assert page.evaluate("window.__same_document") is True  # no reload happened


def test_script_payloads_in_mail_never_run(page: Any, site: tuple[str, Graph]) -> None:
    sign_in(page)
    page.goto("/people?q=mallory")
    page.click("tr.person a")
    page.wait_for_url("**/people/*")
    assert "<img src=x onerror=window.__xss=2>Mallory" in page.locator("h1.person-name").inner_text()
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.click("table.messages td a >> nth=0")
    page.wait_for_url("**/messages/*")
    assert page.locator("h1.subject").inner_text() == "<script>window.__xss=1</script>Quarterly numbers"
    body = page.locator("pre.body").inner_text()
    assert "Hello" in body and "click" in body
    assert page.locator("main script, main img, main iframe").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.goto("/")
    assert "Quarterly numbers" in page.locator("table.messages").inner_text()
    assert page.evaluate("typeof window.__xss") == "undefined"
