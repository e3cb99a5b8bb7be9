"""Optional website metadata for companies (`[enrichment] web = true`; off by default).

Theory of operation. For each company domain not fetched within `max_age`, fetch its home page
once: robots.txt first (a disallow for our User-Agent, or for everyone, is respected and
recorded), then `/` with a timeout, an overall deadline and a size cap (a slow or huge page is
cut off and what arrived is read), no cookies (urllib's default opener keeps none) and a
User-Agent that says who we are. From the page: the title, the description (`<meta
name=description>`, else Open Graph) and a logo (Open Graph image, else an icon link, else
`/favicon.ico`). Every outcome — also a failure — is recorded with its time, so a failing site
is tried again only after `max_age`, never in a loop. Fetching happens outside the writer; only
`record_site` writes.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urljoin

from relayproxy.graph.enrich_store import refresh_company

USER_AGENT = "relayproxy-enrichment/0.1 (reads a company home page once for its name and logo)"
TIMEOUT = 5.0  # seconds per connection or read, and for the whole page
MAX_BYTES = 512_000
MAX_AGE = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What a company's home page says about it, or why it could not be read."""

    url: str
    status: str  # ok | failed | disallowed
    error: str | None = None
    title: str | None = None
    description: str | None = None
    logo: str | None = None


class _Head(HTMLParser):
    """Collects title, descriptions and icons; stops caring after </head>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.meta: dict[str, str] = {}
        self.icons: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = (values.get("name") or values.get("property") or "").lower()
            if key and "content" in values:
                self.meta.setdefault(key, values["content"].strip())
        elif tag == "link" and "icon" in values.get("rel", "").lower() and values.get("href"):
            self.icons.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < 300:
            self.title += data


def _get(url: str, timeout: float, max_bytes: int) -> tuple[int, bytes, str]:
    """(status, body cut at `max_bytes` or at the deadline, final URL)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/html,*/*;q=0.5"})
    deadline = time.monotonic() + timeout
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https only, built here)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", url
    with response:
        chunks: list[bytes] = []
        size = 0
        while size < max_bytes and time.monotonic() < deadline:
            try:
                chunk = response.read1(min(16_384, max_bytes - size))
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return int(response.status), b"".join(chunks), response.geturl()


def fetch_site(base: str, *, timeout: float = TIMEOUT, max_bytes: int = MAX_BYTES) -> SiteInfo:
    """Read the home page at `base` (`https://acme.com`) once, as robots.txt allows."""
    home = base.rstrip("/") + "/"
    try:
        status, body, _ = _get(urljoin(home, "/robots.txt"), timeout, 64_000)
        robots = urllib.robotparser.RobotFileParser()
        robots.parse(body.decode("utf-8", "replace").splitlines() if status == 200 else [])
        if not robots.can_fetch(USER_AGENT, home):
            return SiteInfo(home, "disallowed", "robots.txt disallows the home page")
        status, body, final = _get(home, timeout, max_bytes)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        return SiteInfo(home, "failed", f"{type(exc).__name__}: {exc}"[:300])
    if status >= 400 or not body:
        return SiteInfo(home, "failed", f"HTTP {status}" if status >= 400 else "empty or too slow a page")
    head = _Head()
    try:
        head.feed(body.decode("utf-8", "replace"))
    except Exception as exc:  # html.parser is tolerant; anything else is a bad page, recorded
        return SiteInfo(final, "failed", f"unreadable page: {exc}"[:300])
    meta = head.meta
    title = " ".join(head.title.split()) or meta.get("og:title") or None
    description = meta.get("description") or meta.get("og:description") or None
    logo_ref = meta.get("og:image") or (head.icons[0] if head.icons else "/favicon.ico")
    return SiteInfo(final, "ok", None, title and title[:300], description and description[:1000],
                    urljoin(final, logo_ref))


# --- the database side -------------------------------------------------------------------


def due(conn: sqlite3.Connection, now: datetime, max_age: timedelta = MAX_AGE, limit: int = 20) -> list[str]:
    """Company domains never fetched, or last fetched (successfully or not) before `max_age`."""
    cutoff = (now - max_age).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        str(r[0])
        for r in conn.execute(
            """SELECT c.domain FROM companies c LEFT JOIN websites w ON w.domain = c.domain
               WHERE w.domain IS NULL OR w.fetched_at < ? ORDER BY w.fetched_at IS NOT NULL, c.id LIMIT ?""",
            (cutoff, limit),
        )
    ]


def record_site(conn: sqlite3.Connection, domain: str, info: SiteInfo, now: datetime) -> None:
    """Store one fetch's outcome and refresh the company it describes (writer thread)."""
    conn.execute(
        """INSERT OR REPLACE INTO websites (domain, url, status, error, title, description, logo, fetched_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (domain, info.url, info.status, info.error, info.title, info.description, info.logo,
         now.strftime("%Y-%m-%dT%H:%M:%SZ")),
    )
    for (company_id,) in conn.execute("SELECT id FROM companies WHERE domain = ?", (domain,)).fetchall():
        refresh_company(conn, int(company_id))


def refresh_sites(
    read: Callable[[Callable[[sqlite3.Connection], list[str]]], list[str]],
    write: Callable[[Callable[[sqlite3.Connection], None]], None],
    now: datetime,
    *,
    base_for: Callable[[str], str] = lambda domain: f"https://{domain}",
    max_age: timedelta = MAX_AGE,
    limit: int = 20,
) -> int:
    """One round: fetch the sites that are due (outside the writer), record each; returns how many.

    `read` and `write` run a function on a read connection and in the writer (e.g.
    `Store.read` wrapped, `Store.write_sync`); `base_for` maps a domain to its base URL (tests
    point it at a local server)."""
    domains = read(lambda conn: due(conn, now, max_age, limit))
    for domain in domains:
        info = fetch_site(base_for(domain))

        def store(conn: sqlite3.Connection, domain: str = domain, info: SiteInfo = info) -> None:
            record_site(conn, domain, info, now)

        write(store)
    return len(domains)
