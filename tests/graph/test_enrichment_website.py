"""The opt-in website fetch against a local HTTP server (never the internet)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from relayproxy.graph import Graph, queries, website

PAGE = b"""<!doctype html><html><head><title> Globex Corporation </title>
<meta name="description" content="Globex makes everything.">
<meta property="og:image" content="/static/logo.png">
<link rel="icon" href="/favicon.png"></head><body>Hello</body></html>"""

Route = Callable[[BaseHTTPRequestHandler], None]


def serve(routes: dict[str, Route]) -> tuple[ThreadingHTTPServer, list[dict[str, str]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            route = routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            route(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, seen


def body(data: bytes, *, delay: float = 0.0) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Set-Cookie", "tracker=1")
        handler.end_headers()
        for start in range(0, len(data), 4096):
            handler.wfile.write(data[start : start + 4096])
            handler.wfile.flush()
            if delay:
                time.sleep(delay)

    return route


@pytest.fixture
def site() -> Iterator[Callable[[dict[str, Route]], tuple[str, list[dict[str, str]]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, Route]) -> tuple[str, list[dict[str, str]]]:
        server, seen = serve(routes)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_title_description_and_logo(site: Callable[..., tuple[str, list[dict[str, str]]]]) -> None:
    base, seen = site({"/": body(PAGE), "/robots.txt": body(b"User-agent: *\nAllow: /\n")})
    info = website.fetch_site(base)
    assert info.status == "ok"
    assert info.title == "Globex Corporation"
    assert info.description == "Globex makes everything."
    assert info.logo == f"{base}/static/logo.png"
    assert all(s["user-agent"] == website.USER_AGENT for s in seen)
    assert [s["path"] for s in seen] == ["/robots.txt", "/"]
    assert all("cookie" not in s for s in seen)  # robots.txt set one; it is not sent back


def test_favicon_when_there_is_no_image(site: Callable[..., tuple[str, list[dict[str, str]]]]) -> None:
    base, _ = site({"/": body(b"<html><head><title>Tiny</title><meta property='og:description' content='OG'>"
                              b"</head></html>")})
    info = website.fetch_site(base)
    assert (info.title, info.description, info.logo) == ("Tiny", "OG", f"{base}/favicon.ico")


def test_robots_disallow_is_respected(site: Callable[..., tuple[str, list[dict[str, str]]]]) -> None:
    base, seen = site({"/": body(PAGE), "/robots.txt": body(b"User-agent: *\nDisallow: /\n")})
    info = website.fetch_site(base)
    assert info.status == "disallowed"
    assert [s["path"] for s in seen] == ["/robots.txt"]


def test_huge_page_is_cut_off(site: Callable[..., tuple[str, list[dict[str, str]]]]) -> None:
    base, _ = site({"/": body(PAGE + b"x" * 5_000_000)})
    info = website.fetch_site(base, max_bytes=64_000)
    assert info.status == "ok" and info.title == "Globex Corporation"


def test_slow_page_is_cut_off(site: Callable[..., tuple[str, list[dict[str, str]]]]) -> None:
    base, _ = site({"/": body(PAGE + b" " * 400_000, delay=0.05)})
    started = time.monotonic()
    info = website.fetch_site(base, timeout=0.5)
    assert time.monotonic() - started < 3
    assert info.title == "Globex Corporation"


def test_unreachable_site_is_recorded_as_failed() -> None:
    info = website.fetch_site("http://127.0.0.1:9", timeout=0.5)
    assert info.status == "failed" and info.error


def test_refresh_records_outcomes_and_does_not_retry_until_due(
    graph: Graph, site: Callable[..., tuple[str, list[dict[str, str]]]]
) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    graph.ingest_raw(b"From: Jane <jane@globex.com>\r\nTo: alice@example.com\r\nSubject: s\r\n"
                     b"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <w1@x>\r\n\r\nHi", "alice@example.com",
                     "import", now=now)
    graph.ingest_raw(b"From: Sam <sam@initech.com>\r\nTo: alice@example.com\r\nSubject: s\r\n"
                     b"Date: Mon, 05 Jan 2026 10:00:00 +0000\r\nMessage-ID: <w2@x>\r\n\r\nHi", "alice@example.com",
                     "import", now=now)
    base, seen = site({"/": body(PAGE)})

    def read(fn: Callable[..., list[str]]) -> list[str]:
        with graph.store.read() as conn:
            return fn(conn)

    bases = {"globex.com": base, "initech.com": "http://127.0.0.1:9"}
    assert website.refresh_sites(read, graph.store.write_sync, now, base_for=bases.__getitem__) == 2
    with graph.store.read() as conn:
        globex = next(c for c in queries.companies(conn, now) if c["domain"] == "globex.com")
        status = dict(conn.execute("SELECT domain, status FROM websites").fetchall())
    assert globex["description"] == "Globex makes everything."
    assert status == {"globex.com": "ok", "initech.com": "failed"}
    fetched = len(seen)
    assert website.refresh_sites(read, graph.store.write_sync, now + timedelta(days=1),
                                 base_for=bases.__getitem__) == 0
    assert len(seen) == fetched  # nothing due: failures are not retried in a loop
    assert website.refresh_sites(read, graph.store.write_sync, now + timedelta(days=31),
                                 base_for=bases.__getitem__) == 2
