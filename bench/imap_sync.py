"""Benchmark: a full mbsync pull directly from Dovecot, through a bare asyncio byte relay, and
through relayproxy's IMAP proxy with capture on.

    .venv/bin/python bench/imap_sync.py [--rounds 7] [--messages 2000] [--size 30000]
                                        [--capture journal|drop] [--big-mb 50]

Theory of operation: Dovecot and both stores live on a tmpfs (mounted here with `mount -t tmpfs`;
/dev/shm when that is not allowed) so that disk noise does not drown the comparison. Dovecot is
seeded over LMTP with `--messages` messages of `--size` bytes. Three ways of pulling the whole
INBOX with mbsync into an empty Maildir are then timed in turn, A B C A B C ..., `--rounds`
times each, and the medians and ratios printed:

* direct: mbsync → Dovecot;
* bare relay: mbsync → the best plain asyncio relay we know how to write (protocols, 256 KiB
  reads, straight `transport.write`, the same flow control as relayproxy) → Dovecot; the floor
  for any Python proxy;
* relayproxy: mbsync → `ImapProxy` with capture on → Dovecot.

Each relay runs in its own process, so nothing shares a GIL with the load. Capture
(`--capture`): `journal` (default) is capture as `serve` runs it: the real `JournalCapture`
journals every fetched message into the graph's SQLite database (on the tmpfs) through the
graph's single writer thread, off the relay's hot path, and the ingest worker parses them in
its own process and ingests them; `drop` counts and discards. Finally one
`--big-mb` message is fetched through a fresh proxy process with imaplib, and that process's
peak RSS (VmHWM) is printed.

Targets (issue 4): relayproxy ≤ 1.15 × the bare relay; peak RSS ≤ 150 MB for the 50 MB message.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

USER, PASSWORD = "bench@example.com", "benchpw"
BIG_USER = "big@example.com"

# ----------------------------------------------------------------------------- roles


def serve_bare(upstream_port: int) -> None:
    """A bare asyncio byte relay: no parsing at all."""

    class Side(asyncio.Protocol):
        def __init__(self) -> None:
            self.peer: asyncio.Transport | None = None
            self.transport: asyncio.Transport | None = None
            self.early: list[bytes] = []

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            transport.set_write_buffer_limits(1 << 20, 256 << 10)

        def data_received(self, data: bytes) -> None:
            if self.peer is None:
                self.early.append(data)
            else:
                self.peer.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.peer is not None:
                self.peer.close()

        def pause_writing(self) -> None:
            if self.peer is not None:
                self.peer.pause_reading()

        def resume_writing(self) -> None:
            if self.peer is not None:
                self.peer.resume_reading()

    class Client(Side):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            assert self.transport is not None
            self.transport.pause_reading()
            asyncio.get_running_loop().create_task(self.connect())

        async def connect(self) -> None:
            upstream = Side()
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_connection(
                lambda: upstream, "127.0.0.1", upstream_port
            )
            assert isinstance(transport, asyncio.Transport) and self.transport is not None
            upstream.peer, self.peer = self.transport, transport
            for data in self.early:
                transport.write(data)
            self.transport.resume_reading()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Client, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(main())


def serve_proxy(upstream_port: int, folder: str, capture_kind: str) -> None:
    """relayproxy's IMAP proxy relaying to Dovecot, capture on."""
    from relayproxy.capture import JournalCapture
    from relayproxy.config import parse
    from relayproxy.graph import Graph
    from relayproxy.imap.relay import ImapProxy
    from relayproxy.worker import IngestWorker, default_processes

    settings = parse({
        "storage": {"database": f"{folder}/bench.db", "blobs": f"{folder}/blobs"},
        "imap": {"listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream_port}",
                 "upstream_security": "none"},
        "team": {"domains": ["example.com"],
                 "members": [{"login": USER}, {"login": BIG_USER}]},
    })

    class DropCapture:
        """Counts and discards: the cost of capture on the relay's path alone."""

        count = 0

        async def pending(self, *args: Any) -> int | None:
            return None

        async def accepted(self, *args: Any) -> None:
            return None

        async def refused(self, *args: Any) -> None:
            return None

        def received(self, raw: bytes, member: str, source: str) -> None:
            self.count += 1

        def received_file(self, file: Any, size: int, member: str, source: str) -> None:
            file.close()
            self.count += 1

    async def main() -> None:
        # As serve runs it: the durable journal, and the ingest worker parsing in its own process.
        graph = Graph(settings) if capture_kind == "journal" else None
        capture: Any = DropCapture()
        worker: IngestWorker | None = None
        if graph is not None:
            worker = IngestWorker(graph, processes=default_processes())
            capture = JournalCapture(graph, worker.wake)
            ingesting = asyncio.create_task(worker.run())
        proxy = ImapProxy(settings, capture)
        await proxy.start()
        print(proxy.port, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await proxy.close()
        if graph is not None and worker is not None:
            worker.stop()
            await ingesting
            worker.close()
            graph.close()

    asyncio.run(main())


# ----------------------------------------------------------------------------- measuring


def start(role: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(HERE), role, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise RuntimeError(f"{role} did not start")
    return process, int(line)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of `pid` in MB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def tmpfs(size: str) -> tuple[Path, bool]:
    """A fresh folder on tmpfs: a new mount when allowed, else under /dev/shm."""
    folder = Path(tempfile.mkdtemp(prefix="relayproxy-bench-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode == 0
    if not mounted:
        folder.rmdir()
        folder = Path(tempfile.mkdtemp(prefix="relayproxy-bench-", dir="/dev/shm"))
    return folder, mounted


def seed(dovecot: Any, login: str, messages: int, size: int) -> None:
    from tests.imap.messages import sized_message

    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port) as lmtp:
        for i in range(messages):
            lmtp.sendmail("sender@globex.com", [login], sized_message(i, size, to=login))


def time_pull(folder: Path, port: int) -> float:
    from tests.imap.peers import mbsync_config, run_mbsync

    config = mbsync_config(folder, port, USER, PASSWORD, "None", host="127.0.0.1")
    started = time.perf_counter()
    run_mbsync(config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=30_000)
    parser.add_argument("--capture", choices=("journal", "drop"), default="journal")
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()

    from tests.imap.messages import sized_message
    from tests.imap.peers import maildir_messages
    from tests.peers.certs import make_certs
    from tests.peers.dovecot import start_dovecot

    folder, mounted = tmpfs("3g")
    print(f"stores on tmpfs at {folder} ({'mounted' if mounted else '/dev/shm'})")
    dovecot = start_dovecot(make_certs(folder / "tls"), folder / "dovecot")
    children: list[subprocess.Popen[str]] = []
    try:
        dovecot.add_user(USER, PASSWORD)
        dovecot.add_user(BIG_USER, PASSWORD)
        started = time.perf_counter()
        seed(dovecot, USER, args.messages, args.size)
        print(f"seeded {args.messages} x {args.size} B in {time.perf_counter() - started:.1f} s")

        bare, bare_port = start("serve-bare", str(dovecot.port))
        proxy, proxy_port = start("serve-proxy", str(dovecot.port), str(folder), args.capture)
        children += [bare, proxy]
        ways = {"direct": dovecot.port, "bare relay": bare_port, "relayproxy": proxy_port}
        for name, port in ways.items():  # warm up and check that every way gets every message
            time_pull(folder / name.replace(" ", "-"), port)
            got = len(maildir_messages(folder / name.replace(" ", "-")))
            assert got == args.messages, f"{name}: {got} messages"
        times: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {"bare relay": [], "relayproxy": []}
        pids = {"bare relay": bare.pid, "relayproxy": proxy.pid}
        for _ in range(args.rounds):
            for name, port in ways.items():
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                times[name].append(time_pull(folder / name.replace(" ", "-"), port))
                if name in pids:
                    cpu[name].append(cpu_seconds(pids[name]) - before)
        medians = {name: statistics.median(t) for name, t in times.items()}
        total_mb = args.messages * args.size / 1e6
        print(f"\nmbsync full pull, {args.messages} x {args.size} B ({total_mb:.0f} MB), "
              f"{args.rounds} alternating runs each, capture={args.capture}")
        for name, t in times.items():
            runs = " ".join(f"{x:.3f}" for x in t)
            print(f"  {name:11s} median {medians[name]:.3f} s   runs: {runs}")
        print(f"  bare relay / direct      = {medians['bare relay'] / medians['direct']:.2f}")
        print(f"  relayproxy / direct      = {medians['relayproxy'] / medians['direct']:.2f}")
        ratio = medians["relayproxy"] / medians["bare relay"]
        print(f"  relayproxy / bare relay  = {ratio:.3f}   (target <= 1.15)")
        # Wall time on a shared 2-core machine is noisy; the relays' own CPU time per pull is not.
        cpu_medians = {name: statistics.median(t) for name, t in cpu.items()}
        for name in cpu:
            print(f"  {name:11s} CPU per pull: median {cpu_medians[name]:.3f} s")
        cpu_ratio = cpu_medians["relayproxy"] / cpu_medians["bare relay"]
        print(f"  relayproxy / bare relay CPU = {cpu_ratio:.3f}")
        hwm, rss = peak_rss_mb(proxy.pid)
        print(f"  relayproxy process after the runs: peak RSS {hwm:.0f} MB, now {rss:.0f} MB")
        for child in children:
            stop(child)
        children.clear()

        if args.big_mb:
            big = sized_message(1, args.big_mb * 1_000_000, to=BIG_USER)
            dovecot.deliver(BIG_USER, big)
            proxy, proxy_port = start("serve-proxy", str(dovecot.port), str(folder), args.capture)
            children.append(proxy)
            base, _ = peak_rss_mb(proxy.pid)
            started = time.perf_counter()
            client = imaplib.IMAP4("127.0.0.1", proxy_port)
            client.login(BIG_USER, PASSWORD)
            client.select("INBOX", readonly=True)
            _, data = client.fetch("1", "(BODY.PEEK[])")
            elapsed = time.perf_counter() - started
            body = next(d[1] for d in data if isinstance(d, tuple))
            client.logout()
            # LMTP delivery adds Return-Path/Delivered-To/Received in front; the rest is ours.
            assert body.endswith(big), "the big message came through changed"
            # Capture finishes after the client has its bytes (read back from the spill file,
            # journalled): wait until the proxy is idle before reading its peak.
            last, idle_checks = -1.0, 0
            while idle_checks < 3:
                time.sleep(0.2)
                now = cpu_seconds(proxy.pid)
                idle_checks = idle_checks + 1 if now == last else 0
                last = now
            hwm, rss = peak_rss_mb(proxy.pid)
            print(f"\none {len(big) / 1e6:.0f} MB message fetched through relayproxy in "
                  f"{elapsed:.2f} s: proxy peak RSS {hwm:.0f} MB (at start {base:.0f} MB; "
                  f"target <= 150 MB)")
    finally:
        for child in children:
            stop(child)
        dovecot.stop()
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
            os.rmdir(folder)
        else:
            subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-bare":
        serve_bare(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-proxy":
        serve_proxy(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
