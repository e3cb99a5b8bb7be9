"""The SMTP submission proxy: listeners, the sessions they accept, and a bounded shutdown.

Theory of operation: `SmtpProxy.start()` binds `smtp.listen` (plaintext, STARTTLS offered when
`[tls]` is set) and, when set, `smtp.listen_tls` (implicit TLS, RFC 8314) with
`loop.create_server` in the running event loop — not aiosmtpd's threaded `Controller` — so
`relayproxy serve` runs it beside IMAP, ingest and the web site. Each accepted connection is a
`RelaySession` (session.py) with its own upstream connection.

Shutdown (`stop(timeout)`): stop accepting; idle sessions hear 421 at once; sessions in a mail
transaction finish it (DATA included) and then hear 421; whoever is still busy when `timeout`
runs out hears 421 and is closed. Background work (a message's verdict, which outlives its
client) goes through `spawn`, which keeps a reference to each task.

`settings` may be replaced while running (SIGHUP): new sessions and new sign-ins read the
current value.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from relayproxy.capture import Capture
from relayproxy.config import ConfigError, HostPort, Settings, is_loopback
from relayproxy.smtp.session import RelaySession
from relayproxy.smtp.upstream import Upstream, UpstreamUnavailable
from relayproxy.tls import server_context, upstream_context

log = logging.getLogger("relayproxy.smtp")

T = TypeVar("T")


class SmtpProxy:
    """The transparent SMTP submission proxy that captures sent mail."""

    # The protocol class for each connection (a seam for benchmarks and tests).
    session_class: type[RelaySession] = RelaySession

    def __init__(
        self,
        settings: Settings,
        capture: Capture,
        *,
        is_local: Callable[[str], bool] = is_loopback,
        timeout: float = 60.0,
        data_timeout: float = 600.0,
        idle_timeout: float = 300.0,
        hostname: str | None = None,
    ) -> None:
        """`is_local` says which client addresses may sign in without TLS (loopback ones).

        `timeout` bounds each upstream command, `data_timeout` the wait for upstream's verdict
        on a message (RFC 5321 §4.5.3.2.6 suggests 10 minutes), `idle_timeout` a silent client.
        """
        self.settings = settings
        self.capture = capture
        self.is_local = is_local
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.idle_timeout = idle_timeout
        self.hostname = hostname or socket.gethostname()
        self.sessions: set[RelaySession] = set()
        self.draining = False
        self.server_tls: ssl.SSLContext | None = None
        self.upstream_tls: ssl.SSLContext = ssl.create_default_context()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "SmtpProxy.start() has not run"
        return self._loop

    async def start(self) -> None:
        """Bind the listeners; raises ConfigError naming the key when that cannot be done."""
        self._loop = asyncio.get_running_loop()
        # aiosmtpd logs every command line at INFO ("mail.log"). It masks AUTH's argument, but
        # a line sent after a sign-in ended early (a password answering no challenge) would be
        # logged as an unknown command; keep it to warnings unless someone chose otherwise.
        aiosmtpd_log = logging.getLogger("mail.log")
        if aiosmtpd_log.level == logging.NOTSET:
            aiosmtpd_log.setLevel(logging.WARNING)
        self.server_tls = server_context(self.settings)
        # One verifying context for every upstream connection: building one loads the CA store.
        self.upstream_tls = upstream_context(self.settings)
        smtp = self.settings.smtp
        self._servers.append(await self._listen("smtp.listen", smtp.listen, implicit_tls=False))
        if smtp.listen_tls is not None:
            if self.server_tls is None:
                raise ConfigError(
                    "smtp.listen_tls", "needs a certificate: set tls.cert and tls.key."
                )
            self._servers.append(
                await self._listen("smtp.listen_tls", smtp.listen_tls, implicit_tls=True)
            )
        log.info(
            "SMTP proxy on %s%s, relaying to %s (%s)",
            smtp.listen,
            f" and {smtp.listen_tls} (TLS)" if smtp.listen_tls else "",
            smtp.upstream or "no upstream",
            smtp.upstream_security,
        )

    async def _listen(self, key: str, address: HostPort, *, implicit_tls: bool) -> asyncio.Server:
        try:
            return await self.loop.create_server(
                lambda: self.session_class(self, implicit_tls=implicit_tls),
                host=address.host,
                port=address.port,
                ssl=self.server_tls if implicit_tls else None,
                reuse_address=True,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                key, f"cannot listen on {address}: {reason}; choose another address or port."
            ) from None

    @property
    def port(self) -> int:
        """The bound port of `smtp.listen` (useful when it was 0)."""
        return _port(self._servers[0])

    @property
    def tls_port(self) -> int | None:
        """The bound port of `smtp.listen_tls`, or None."""
        return _port(self._servers[1]) if len(self._servers) > 1 else None

    async def probe_upstream(self) -> str | None:
        """Try the upstream once: None when reachable, else why not (for a warning at start)."""
        try:
            upstream = await Upstream.connect(
                self.settings.smtp.upstream,
                self.settings.smtp.upstream_security,
                self.upstream_tls,
                local_hostname=self.hostname,
                timeout=self.timeout,
            )
        except UpstreamUnavailable as exc:
            return str(exc)
        upstream.quit()
        return None

    def spawn(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run background work, keeping a reference until it is done."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._check_idle()

    def forget(self, session: RelaySession) -> None:
        """A session has ended (called by the session)."""
        self.sessions.discard(session)
        self._check_idle()

    def _check_idle(self) -> None:
        if self.sessions or self._tasks:
            self._idle.clear()
        else:
            self._idle.set()

    async def stop(self, timeout: float) -> None:
        """Stop accepting; let sessions in flight finish for up to `timeout` s; 421 to the rest."""
        self.draining = True
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.draining = True
            if not session.busy and not session.in_transaction:
                session.shut_down()
        self._check_idle()
        if self._idle.is_set():
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return
        except TimeoutError:
            pass
        if self.sessions:
            log.warning(
                "SMTP: %d sessions still busy after %gs; closing them", len(self.sessions), timeout
            )
        for session in list(self.sessions):
            session.abort()
        for task in list(self._tasks):
            task.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), 5.0)
        except TimeoutError:
            log.warning("SMTP: sessions did not close in time")

    async def close(self) -> None:
        """Stop at once (421 to everyone) and release the listeners."""
        if not self.draining or self.sessions:
            await self.stop(0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
