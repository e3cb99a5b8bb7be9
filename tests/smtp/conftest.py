"""Fixtures for SMTP proxy tests: settings pointing at a real upstream, and a running proxy."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from relayproxy.capture import MemoryCapture
from relayproxy.config import Settings, parse
from relayproxy.smtp.server import SmtpProxy
from tests.peers.certs import Certs
from tests.peers.smtp_upstream import UpstreamServer


def make_settings(
    upstream: UpstreamServer | str,
    certs: Certs,
    *,
    tls: bool = True,
    listen_tls: bool = True,
    unknown_logins: bool = False,
) -> Settings:
    """Settings for a proxy on free loopback ports relaying to `upstream`."""
    address = upstream if isinstance(upstream, str) else upstream.address
    security = "none" if isinstance(upstream, str) else upstream.security
    data: dict[str, Any] = {
        "smtp": {
            "listen": "127.0.0.1:0",
            "listen_tls": "127.0.0.1:0" if tls and listen_tls else "",
            "upstream": address,
            "upstream_security": security,
        },
        "capture": {"unknown_logins": unknown_logins},
        "team": {
            "domains": ["example.com"],
            "members": [{"login": "alice@example.com", "name": "Alice"}],
        },
        "tls": {"upstream_ca": str(certs.ca)},
    }
    if tls:
        data["tls"].update({"cert": str(certs.cert), "key": str(certs.key)})
    return parse(data)


StartProxy = Callable[..., Awaitable[SmtpProxy]]


@pytest_asyncio.fixture
async def smtp_proxy(certs: Certs) -> AsyncIterator[StartProxy]:
    """Factory: ``proxy = await smtp_proxy(upstream, capture=..., tls=..., is_local=...)``."""
    started: list[SmtpProxy] = []

    async def start(
        upstream: UpstreamServer | str,
        *,
        capture: MemoryCapture | None = None,
        is_local: Callable[[str], bool] | None = None,
        **options: Any,
    ) -> SmtpProxy:
        settings = make_settings(upstream, certs, **options)
        extra: dict[str, Any] = {"timeout": 5.0, "data_timeout": 5.0}
        if is_local is not None:
            extra["is_local"] = is_local
        proxy = SmtpProxy(settings, capture if capture is not None else MemoryCapture(), **extra)
        await proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.close()


def client_tls(certs: Certs) -> ssl.SSLContext:
    """A client context that trusts the test CA."""
    return ssl.create_default_context(cafile=str(certs.ca))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds, polling the loop (no fixed sleeps)."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)
