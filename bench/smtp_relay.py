"""Benchmark: SMTP submission straight to a sink versus through relayproxy with capture on.

    .venv/bin/python bench/smtp_relay.py [--rounds 3] [--messages 2000] [--sessions 20]

Theory of operation: three processes so no Python code shares a GIL with another — an aiosmtpd
sink (accepts and discards), the relayproxy SMTP proxy relaying to that sink with a
`JournalCapture` on a graph database on disk (durable: SQLite synchronous=FULL, so every
journal commit is fsynced; concurrent sessions share commits) and the ingest worker ingesting
as mail arrives, parsing in its own process, as `serve` runs them — and the load: Postfix's
`smtp-source` (C) sending `--messages` messages of 20 KB over `--sessions` parallel sessions.
Runs alternate direct / proxied (A B A B ...) and the medians are reported, because timings on
these machines are noisy. Then one session sends 200 messages one after another with smtplib,
direct and proxied, timing each; the difference of the medians is the proxy's added latency.

smtp-source cannot sign in, and capture only follows a signed-in member, so the benchmark's
proxy marks every session as a member's (`BenchSession`): each message is journalled pending,
then accepted, exactly as for a signed-in client.

Targets (issue 3): proxied >= 0.6 x direct messages/s; proxy RSS <= 150 MB; added latency
<= 10 ms median per message.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve()
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


# ----------------------------------------------------------------------------- roles


def run_sink() -> None:
    """An aiosmtpd server that accepts everything and keeps nothing."""
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Sink:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            return "250 2.0.0 Ok: discarded"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Sink()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.bench", enable_SMTPUTF8=True), "127.0.0.1", 0
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def run_proxy(sink_port: int, folder: Path, capture_kind: str) -> None:
    """relayproxy's SMTP proxy relaying to the sink, journalling every message durably."""
    from relayproxy.capture import JournalCapture, MemoryCapture
    from relayproxy.config import parse
    from relayproxy.graph import Graph
    from relayproxy.smtp.server import SmtpProxy
    from relayproxy.smtp.session import RelaySession
    from relayproxy.worker import IngestWorker, default_processes

    settings = parse(
        {
            "storage": {"database": str(folder / "bench.db"), "blobs": str(folder / "blobs")},
            "smtp": {"listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{sink_port}",
                     "upstream_security": "none"},
            "team": {"domains": ["example.com"],
                     "members": [{"login": "alice@example.com", "name": "Alice"}]},
        }
    )

    class BenchSession(RelaySession):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.member = "alice@example.com"  # as if signed in: see the module docstring

    async def main() -> None:
        graph = Graph(settings, durable=True)
        # As serve runs it: the ingest worker parses in its own process and ingests as mail comes.
        worker = IngestWorker(graph, processes=default_processes())
        ingesting = asyncio.create_task(worker.run()) if capture_kind == "journal" else None
        capture = JournalCapture(graph, worker.wake) if capture_kind == "journal" else MemoryCapture()
        proxy = SmtpProxy(settings, capture, hostname="relayproxy.bench")
        if capture_kind != "off":
            proxy.session_class = BenchSession
        await proxy.start()
        print(proxy.port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await proxy.stop(5)
        if ingesting is not None:
            worker.stop()
            await ingesting
        worker.close()
        graph.close()

    asyncio.run(main())


# ----------------------------------------------------------------------------- measuring


class Peak(threading.Thread):
    """Samples a process's RSS every 50 ms; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def start(role: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(HERE), "--role", role, *args],
        stdout=subprocess.PIPE, text=True, cwd=HERE.parent.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"the {role} did not start")
    return process, int(line)


def cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def blast(port: int, messages: int, sessions: int, size: int) -> float:
    """Run smtp-source; return messages per second."""
    began = time.perf_counter()
    subprocess.run(
        [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
         "-f", "alice@example.com", "-t", "bob@example.net", "-M", "client.bench",
         f"127.0.0.1:{port}"],
        check=True,
    )
    return messages / (time.perf_counter() - began)


def sequential(port: int, count: int, size: int) -> list[float]:
    """One session, `count` messages one after another; seconds per message."""
    body = (b"Subject: latency\r\n\r\n" + (b"x" * 78 + b"\r\n") * (size // 80))
    timings: list[float] = []
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.bench") as client:
        client.ehlo()
        for _ in range(count):
            began = time.perf_counter()
            client.sendmail("alice@example.com", ["bob@example.net"], body)
            timings.append(time.perf_counter() - began)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["sink", "proxy"])
    parser.add_argument("--sink-port", type=int)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=20 * 1024)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--capture", choices=["journal", "memory", "off"], default="journal",
                        help="what the proxy captures into (diagnostics; the target is journal)")
    args = parser.parse_args()
    if args.role == "sink":
        return run_sink()
    if args.role == "proxy":
        return run_proxy(args.sink_port, args.folder, args.capture)

    if not os.path.exists(SMTP_SOURCE):
        raise SystemExit("smtp-source not found: install Debian package postfix (scripts/setup)")
    with tempfile.TemporaryDirectory(prefix="relayproxy-bench-") as tmp:
        sink, sink_port = start("sink")
        proxy, proxy_port = start(
            "proxy", "--sink-port", str(sink_port), "--folder", tmp, "--capture", args.capture
        )
        peak = Peak(proxy.pid)
        peak.start()
        try:
            blast(sink_port, 200, args.sessions, args.size)  # warm up both paths
            blast(proxy_port, 200, args.sessions, args.size)
            direct: list[float] = []
            proxied: list[float] = []
            proxy_cpu = sink_cpu = 0.0
            for round_ in range(args.rounds):
                direct.append(blast(sink_port, args.messages, args.sessions, args.size))
                before = cpu(proxy.pid), cpu(sink.pid)
                proxied.append(blast(proxy_port, args.messages, args.sessions, args.size))
                proxy_cpu += cpu(proxy.pid) - before[0]
                sink_cpu += cpu(sink.pid) - before[1]
                print(f"round {round_ + 1}: direct {direct[-1]:.0f} msg/s, "
                      f"through relayproxy {proxied[-1]:.0f} msg/s", flush=True)
            lat_direct = sequential(sink_port, args.sequential, args.size)
            lat_proxied = sequential(proxy_port, args.sequential, args.size)
        finally:
            peak.running = False
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(15)
            sink.kill()
            sink.wait()

        d, p = statistics.median(direct), statistics.median(proxied)
        md, mp = statistics.median(lat_direct) * 1000, statistics.median(lat_proxied) * 1000
        print()
        print(f"{args.messages} x {args.size // 1024} KB over {args.sessions} sessions "
              f"(median of {args.rounds}, capture: {args.capture})")
        print(f"  direct to aiosmtpd sink:  {d:7.0f} messages/s")
        print(f"  through relayproxy:       {p:7.0f} messages/s")
        print(f"  ratio:                    {p / d:7.2f}   (target >= 0.60)")
        print(f"  proxy peak RSS:           {peak.peak / 2**20:7.1f} MB (target <= 150)")
        per = 1000 / (args.rounds * args.messages)
        print(f"  CPU per proxied message:  proxy {proxy_cpu * per:.2f} ms, "
              f"sink {sink_cpu * per:.2f} ms ({os.cpu_count()} cores)")
        print(f"one session, {args.sequential} messages in a row (median per message)")
        print(f"  direct:                   {md:7.2f} ms")
        print(f"  through relayproxy:       {mp:7.2f} ms")
        print(f"  added:                    {mp - md:7.2f} ms (target <= 10)")


if __name__ == "__main__":
    main()
