"""Import speed: messages per second and peak RSS for `relayproxy import` of a large mbox.

Generates N realistic messages (about 30 KB: text + HTML alternative + one attachment, many
companies) into an mbox, imports them into a fresh database with the real command in a child
process, and prints messages/s and the child's peak RSS. Target on a 2-core machine:
≥ 3,000 messages/s with RSS ≤ 300 MB.

    .venv/bin/python bench/import_speed.py [--messages 20000] [--size 30000] [--runs 3] [--mbox FILE]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relayproxy.corpus import Person, mailbox, to_mbox

CONFIG = """
[storage]
database = "{dir}/relayproxy.db"
blobs = "{dir}/blobs"
[team]
domains = ["example.com"]
[[team.members]]
login = "alice@example.com"
name = "Alice Example"
addresses = ["alice@example.com"]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=30_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--mbox", type=Path, help="import this mbox instead of generating one")
    parser.add_argument("--runs", type=int, default=3, help="imports into fresh databases; the median is printed")
    args = parser.parse_args()
    # On tmpfs when there is one: disk timings here are noisy (TESTING.md).
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="relayproxy-bench-", dir=shm) as tmp:
        folder = Path(tmp)
        mbox = args.mbox or folder / "alice.mbox"
        if args.mbox is None:
            started = time.monotonic()
            member = Person("Alice Example", "alice@example.com")
            with mbox.open("wb") as out:
                for offset in range(0, args.messages, 1000):
                    count = min(1000, args.messages - offset)
                    out.write(to_mbox(mailbox(count, member, seed=offset + 1, people=args.people, size=args.size)))
            print(f"generated {args.messages} messages, {mbox.stat().st_size / 1e6:.0f} MB, "
                  f"in {time.monotonic() - started:.1f} s")
        size_mb = mbox.stat().st_size / 1e6
        times = []
        for run in range(args.runs):
            database = folder / f"run{run}"
            database.mkdir()
            config = database / "relayproxy.toml"
            config.write_text(CONFIG.format(dir=database))
            command = [sys.executable, "-m", "relayproxy.cli", "import", "--config", str(config),
                       "--member", "alice@example.com", str(mbox)]
            started = time.monotonic()
            result = subprocess.run(command, capture_output=True, text=True)
            times.append(time.monotonic() - started)
            if result.returncode != 0:
                sys.exit(f"import failed: {result.stderr.strip()}")
            shutil.rmtree(database)  # one run's files do not crowd the next run's memory
            print(f"run {run + 1}: {times[-1]:.2f} s; {result.stdout.strip()}")
        elapsed = statistics.median(times)
        messages = int(result.stdout.split()[0])
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rate = messages / elapsed
        print(f"import (median of {args.runs}): {elapsed:.2f} s, {rate:,.0f} messages/s (target ≥ 3,000), "
              f"{size_mb / elapsed:.0f} MB/s, peak RSS {rss_mb:.0f} MB (target ≤ 300)")


if __name__ == "__main__":
    main()
