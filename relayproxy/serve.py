"""`relayproxy serve`: the SMTP and IMAP proxies, the ingest worker and the web site, one process.

Theory of operation: every listener is bound before anything is served, so a port in use or a
bad certificate stops the start with one clear line. Start-up then turns journal entries left
`pending` by a crash into accepted ones and the ingest worker catches up in the background.
SIGTERM/SIGINT stop the listeners, give sessions in flight `serve.shutdown_timeout` seconds,
drain the journal into the graph and exit 0. SIGHUP re-reads the config file: members and
defaults change, connections stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from relayproxy import config, metrics
from relayproxy.capture import JournalCapture
from relayproxy.config import ConfigError, Settings
from relayproxy.graph import Graph, StoreError
from relayproxy.tasks import cancel_and_wait
from relayproxy.worker import IngestWorker, default_processes

log = logging.getLogger("relayproxy.serve")


class ServeError(Exception):
    """relayproxy cannot start; the message says why and what to do."""


class _WebServer(uvicorn.Server):
    """uvicorn without its own signal handling: serve owns SIGTERM/SIGINT/SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def configure_logging() -> None:
    """One event per line on stderr: time, level, component, message."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    for noisy in ("uvicorn.access", "uvicorn.error", "aiosmtpd", "mail.log", "aioimaplib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _bind(key: str, where: config.HostPort) -> socket.socket:
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it each keep-alive response after the first waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((where.host, where.port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or exc
        raise ServeError(f"{key}: cannot listen on {where}: {reason}; choose another address or port.") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _check_startable(settings: Settings) -> None:
    for section, proxy in (("imap", settings.imap), ("smtp", settings.smtp)):
        if proxy.upstream is None:
            raise ConfigError(f"{section}.upstream", 'is not set; name the mail server to relay to, as "host:port".')
    tls = settings.tls
    for key, path in (("tls.cert", tls.cert), ("tls.key", tls.key), ("tls.upstream_ca", tls.upstream_ca)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(key, f"file {path} does not exist.")


class Service:
    """Everything `serve` runs, with start and stop in the right order."""

    def __init__(self, settings: Settings) -> None:
        from relayproxy.continuous import ContinuousSync
        from relayproxy.graph.sync_state import GraphSyncStore
        from relayproxy.graph.watch_state import GraphWatchStore
        from relayproxy.imap.relay import ImapProxy
        from relayproxy.imap.sync import HistorySync
        from relayproxy.imap.watch import MailWatch
        from relayproxy.smtp.server import SmtpProxy

        self.settings = settings
        self.started = time.monotonic()
        try:
            self.graph = Graph(settings)
        except StoreError as exc:
            raise ServeError(str(exc)) from None
        self.worker = IngestWorker(self.graph, processes=default_processes())
        self.capture = JournalCapture(self.graph, self.worker.wake)
        self.smtp = SmtpProxy(settings, self.capture)
        self.imap = ImapProxy(settings, self.capture)
        # History sync (issue 7): a member's first sign-in through the proxy backfills their mail.
        self.history = HistorySync(settings, GraphSyncStore(self.graph))
        self.imap.on_login = self.history.on_login
        # Continuous sync (issue 7): IDLE watchers for members who opted in on the settings page.
        self.continuous = ContinuousSync(settings, self.graph, MailWatch(settings, GraphWatchStore(self.graph)))
        self.web: _WebServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()

    def app(self) -> Starlette:
        """The web site, with /healthz and /metrics beside it."""
        from relayproxy.imap.login import check_login
        from relayproxy.web.app import create_app

        async def login_check(username: str, password: str) -> bool:
            return await check_login(self.settings, username, password)

        site = create_app(self.settings, self.graph, login_check, history=self.history,
                          continuous=self.continuous)
        return Starlette(routes=[Route("/healthz", self.healthz), Route("/metrics", self.metrics), Mount("/", site)])

    async def healthz(self, request: Request) -> JSONResponse:
        """Listeners up, database writable, journal lag."""
        writable = await self.graph.writable()
        lag = await asyncio.to_thread(self.graph.journal_lag)
        listening = self.web is not None and not self._stop.is_set()
        ok = writable and listening
        body = {"status": "ok" if ok else "failing", "listeners": listening, "database_writable": writable,
                "journal_lag": lag, "uptime_seconds": round(time.monotonic() - self.started)}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def start(self) -> None:
        """Bind every listener (or fail before serving anything), then serve."""
        web_socket = _bind("web.listen", self.settings.web_listen)
        try:
            await self.smtp.start()
            await self.imap.start()
        except BaseException:
            web_socket.close()
            await self.smtp.close()
            await self.imap.close()
            raise
        recovered = self.graph.journal_recover()
        if recovered:
            log.info("journal: %d messages were in flight at the last stop; ingesting them", recovered)
        metrics.gauge("journal_lag", self.graph.journal_lag)
        self._tasks.append(asyncio.create_task(self.worker.run(), name="ingest-worker"))
        self.web = _WebServer(uvicorn.Config(self.app(), log_level="warning", access_log=False, lifespan="on"))
        self._tasks.append(asyncio.create_task(self.web.serve(sockets=[web_socket]), name="web"))
        self._tasks.append(asyncio.create_task(self._warn_if_upstream_down(), name="upstream-probe"))
        if self.settings.enrichment_web:
            self._tasks.append(asyncio.create_task(self._refresh_websites(), name="websites"))
        watched = await self.continuous.resume()
        if watched:
            log.info("continuous sync: watching the mail of %d members", watched)
        log.info("web site on http://%s/", self.settings.web_listen)

    async def _warn_if_upstream_down(self) -> None:
        reason = await self.smtp.probe_upstream()
        if reason:
            upstream = self.settings.smtp.upstream
            log.warning("SMTP upstream %s unreachable: %s; clients get 421 until it is back", upstream, reason)
        imap = self.settings.imap.upstream
        assert imap is not None
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(imap.host, imap.port), 10)
            writer.close()
        except (OSError, TimeoutError) as exc:
            log.warning("IMAP upstream %s unreachable: %s; clients get BYE until it is back", imap, exc)

    async def _refresh_websites(self) -> None:
        """[enrichment] web = true: fetch company home pages that are due, a few at a time."""
        from relayproxy.graph import website
        from relayproxy.graph.mail import now_utc

        def read(fn: Any) -> Any:
            with self.graph.store.read() as conn:
                return fn(conn)

        while not self._stop.is_set():
            try:
                fetched = await asyncio.to_thread(website.refresh_sites, read, self.graph.store.write_sync, now_utc())
            except Exception as exc:  # a failed round is logged; the next one comes later
                log.warning("website enrichment round failed: %s", exc)
                fetched = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 5 if fetched else 600)

    def reload(self) -> None:
        """SIGHUP: re-read the config file; members and defaults change, connections stay."""
        assert self.settings.path is not None
        try:
            settings = config.load(self.settings.path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return
        if (settings.smtp, settings.imap, settings.web_listen, settings.tls) != (
            self.settings.smtp, self.settings.imap, self.settings.web_listen, self.settings.tls
        ):
            log.warning("reload: listener, upstream and TLS changes take effect at the next restart")
            settings = _keep_listeners(settings, self.settings)
        self.settings = settings
        self.graph.reload(settings)
        self.smtp.settings = settings
        self.imap.settings = settings
        self.history.settings = settings
        self._tasks.append(asyncio.get_running_loop().create_task(self.continuous.apply(settings), name="reload"))
        log.info("reload: %d members", len(settings.members))

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Stop accepting, finish sessions in flight (bounded), drain the journal."""
        timeout = self.settings.shutdown_timeout
        log.info("stopping: sessions in flight get up to %gs", timeout)
        await asyncio.gather(self.smtp.stop(timeout), self.imap.stop(timeout), return_exceptions=True)
        if self.web is not None:
            self.web.should_exit = True
        await self.capture.flush()
        await self.history.stop()  # progress is recorded per batch: the next start resumes
        await self.continuous.stop()  # positions are recorded per batch: the next start resumes
        self.worker.stop()
        await cancel_and_wait([t for t in self._tasks if t.get_name() in ("upstream-probe", "websites")])
        await asyncio.gather(*self._tasks, return_exceptions=True)
        drained = await self.worker.drain(timeout=max(timeout, 10))
        self.worker.close()
        self.graph.close()
        log.info("stopped%s", "" if drained else "; journal entries left for the next start")


def _keep_listeners(new: Settings, running: Settings) -> Settings:
    import dataclasses

    return dataclasses.replace(
        new, smtp=running.smtp, imap=running.imap, web_listen=running.web_listen, tls=running.tls
    )


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    service = Service(settings)
    await service.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    await service.wait()
    await service.stop()


def run(settings: Settings) -> int:
    """The `serve` command: exit 0 after a clean stop, 1 with one line when it cannot start."""
    configure_logging()
    _check_startable(settings)
    try:
        asyncio.run(serve(settings))
    except ServeError as exc:
        print(f"relayproxy: {exc}", file=sys.stderr)
        return 1
    return 0
