"""The whole system for end-to-end tests: `relayproxy serve` in a child process between a
delivering submission server (in a thread of the test process) and the Dovecot fixture."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relayproxy import config
from relayproxy.demo.dovecot import Dovecot, free_port
from relayproxy.demo.upstream import DeliveringUpstream
from tests.peers.certs import Certs

HOST = "127.0.0.1"


class UpstreamThread:
    """A DeliveringUpstream on its own event loop thread, so it outlives a killed serve."""

    def __init__(self, users: dict[str, str], dovecot: Dovecot | None) -> None:
        lmtp = (dovecot.host, dovecot.lmtp_port) if dovecot else (HOST, 9)
        self.upstream = DeliveringUpstream(users, ("example.com",) if dovecot else (), lmtp)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self.upstream.start(HOST), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.upstream.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Serve:
    """`relayproxy serve` as a child process, restartable, with its config and ports."""

    folder: Path
    config_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> config.Settings:
        return config.load(self.config_path)

    def start(self, timeout: float = 30) -> None:
        log = (self.folder / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relayproxy.cli", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.folder / 'serve.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                self.health()
                return
            if time.monotonic() > deadline:
                raise TimeoutError("serve did not become healthy")
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        web = self.settings.web_listen
        with urllib.request.urlopen(f"http://{web.host}:{web.port}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))

    def wait_ingested(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.health()["journal_lag"] != 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the journal did not drain")
            time.sleep(0.05)

    def api(self, path: str, login: str, password: str) -> Any:
        web = self.settings.web_listen
        request = urllib.request.Request(f"http://{web.host}:{web.port}{path}")
        token = base64.b64encode(f"{login}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def write_config(folder: Path, certs: Certs, members: dict[str, str], smtp_port: int,
                 dovecot: Dovecot | None, sharing: dict[str, str] | None = None) -> Path:
    """A serve config for `members` (login → password), on fresh loopback ports."""
    imap_upstream = f'upstream = "{HOST}:{dovecot.tls_port}"\nupstream_security = "tls"' if dovecot else (
        f'upstream = "{HOST}:9"\nupstream_security = "none"'
    )
    levels = sharing or {}
    team = "".join(
        f'\n[[team.members]]\nlogin = "{login}"\naddresses = ["{login}"]\nsharing = "{levels.get(login, "full")}"\n'
        for login in members
    )
    text = f"""
[storage]
database = "{folder}/relayproxy.db"
blobs = "{folder}/blobs"
[imap]
listen = "{HOST}:{free_port()}"
{imap_upstream}
[smtp]
listen = "{HOST}:{free_port()}"
upstream = "{HOST}:{smtp_port}"
upstream_security = "none"
[tls]
cert = "{certs.cert}"
key = "{certs.key}"
upstream_ca = "{certs.ca}"
[web]
listen = "{HOST}:{free_port()}"
[serve]
shutdown_timeout = 5
[team]
domains = ["example.com"]
{team}"""
    path = folder / "relayproxy.toml"
    path.write_text(text)
    return path


@contextlib.contextmanager
def running(serve: Serve) -> Iterator[Serve]:
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


def http_error_status(call: Any) -> int | None:
    try:
        call()
    except urllib.error.HTTPError as exc:
        return exc.code
    return None
