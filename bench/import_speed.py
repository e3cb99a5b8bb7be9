"""Import speed: messages per second and peak RSS for `relayproxy import` of a large mbox.

Generates N realistic messages (about 30 KB: text + HTML alternative + one attachment, many
companies) into an mbox, imports them into a fresh database with the real command in a child
process, and prints messages/s and the child's peak RSS. Target on a 2-core machine:
≥ 3,000 messages/s with RSS ≤ 300 MB.

    .venv/bin/python bench/import_speed.py [--messages 20000] [--size 30000]
"""

from __future__ import annotations

import argparse
import resource
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
    args = parser.parse_args()
    # On tmpfs when there is one: disk timings here are noisy (TESTING.md).
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="relayproxy-bench-", dir=shm) as tmp:
        folder = Path(tmp)
        mbox = folder / "alice.mbox"
        started = time.monotonic()
        member = Person("Alice Example", "alice@example.com")
        with mbox.open("wb") as out:
            for offset in range(0, args.messages, 1000):
                count = min(1000, args.messages - offset)
                out.write(to_mbox(mailbox(count, member, seed=offset + 1, people=args.people, size=args.size)))
        size_mb = mbox.stat().st_size / 1e6
        print(f"generated {args.messages} messages, {size_mb:.0f} MB, in {time.monotonic() - started:.1f} s")
        config = folder / "relayproxy.toml"
        config.write_text(CONFIG.format(dir=folder))
        command = [sys.executable, "-m", "relayproxy.cli", "import", "--config", str(config),
                   "--member", "alice@example.com", str(mbox)]
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            sys.exit(f"import failed: {result.stderr.strip()}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(result.stdout.strip())
        rate = args.messages / elapsed
        print(f"import: {elapsed:.2f} s, {rate:,.0f} messages/s (target ≥ 3,000), "
              f"{size_mb / elapsed:.0f} MB/s, peak RSS {rss_mb:.0f} MB (target ≤ 300)")


if __name__ == "__main__":
    main()
