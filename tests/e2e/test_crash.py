"""kill -9 during a burst of mail: nothing the upstream accepted is lost, nothing counts twice.

A burst of 500 messages goes through the SMTP proxy over 4 sessions while `serve` is killed
with SIGKILL at a random moment, then restarted. Afterwards every message the client was told
was accepted reached the upstream, every message the upstream accepted is in the graph exactly
once, and the only extra ones are those in flight at the kill (at most one per session).
Run it ten times in a row with CRASH_RUNS=10.
"""

from __future__ import annotations

import contextlib
import os
import random
import smtplib
import ssl
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relayproxy.graph import queries
from relayproxy.graph.store import connect
from tests.e2e.system import Serve, UpstreamThread, write_config
from tests.peers.certs import Certs

SESSIONS = 4
MESSAGES = 500
RUNS = int(os.environ.get("CRASH_RUNS", "2"))


def burst(serve: Serve, login: str, password: str, ca: Path, run: int, acked: list[str], stop_after: int,
          killed: threading.Event) -> list[threading.Thread]:
    smtp = serve.settings.smtp.listen
    lock = threading.Lock()

    def session(first: int) -> None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=30)
            client.starttls(context=ssl.create_default_context(cafile=str(ca)))
            client.login(login, password)
            for i in range(first, MESSAGES, SESSIONS):
                mid = f"crash-{run}-{i}@example.com"
                raw = (f"From: {login}\r\nTo: p{i % 40}@globex.com\r\nSubject: burst {i}\r\n"
                       f"Message-ID: <{mid}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nmessage {i}\r\n")
                client.sendmail(login, [f"p{i % 40}@globex.com"], raw.encode())
                with lock:
                    acked.append(mid)
                    if len(acked) >= stop_after and not killed.is_set():
                        killed.set()
                        serve.kill()

    threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("run", range(RUNS))
def test_kill_9_loses_nothing_and_counts_nothing_twice(tmp_path: Path, certs: Certs, run: int) -> None:
    login, password = "alice@example.com", "alice-pw"
    upstream = UpstreamThread({login: password}, None)
    serve = Serve(tmp_path, write_config(tmp_path, certs, {login: password}, upstream.port, None))
    try:
        serve.start()
        acked: list[str] = []
        killed = threading.Event()
        stop_after = random.Random(run).randint(20, MESSAGES - 50)
        for thread in burst(serve, login, password, certs.ca, run, acked, stop_after, killed):
            thread.join(120)
        assert killed.is_set()

        serve.start()
        serve.wait_ingested()
        reached = Counter(
            line.split(b"<", 1)[1].split(b">", 1)[0].decode()
            for raw in upstream.upstream.accepted for line in raw.split(b"\r\n") if line.startswith(b"Message-ID:")
        )
        assert set(acked) <= set(reached), "a message the client was told was accepted never reached upstream"

        with contextlib.closing(connect(serve.settings.storage.database, readonly=True)) as conn:
            keys = [k for (k,) in conn.execute("SELECT key FROM messages")]
            in_graph = Counter(k.removeprefix("mid:") for k in keys)
            people = {p["emails"][0]: p["messages_sent"] for p in queries.people(conn, datetime.now(UTC))}
        assert max(in_graph.values()) == 1
        assert set(reached) <= set(in_graph), "a message the upstream accepted is missing from the graph"
        assert len(set(in_graph) - set(reached)) <= SESSIONS
        per_person = Counter(f"p{int(mid.split('-')[2].split('@')[0]) % 40}@globex.com" for mid in in_graph)
        assert people == dict(per_person), "a message was counted twice (or not at all)"
    finally:
        with contextlib.suppress(Exception):
            serve.stop()
        upstream.close()
