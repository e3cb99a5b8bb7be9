"""Enrichment acceptance figures on the signature corpus (tests/graph/signature_corpus.py).

Run: .venv/bin/python bench/enrichment_corpus.py — prints the job-title and phone figures that
issue 8 asks for, and how long extraction takes per message (it runs in `prepare`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relayproxy.graph.enrichment import findings_for  # noqa: E402
from relayproxy.graph.mail import parse  # noqa: E402
from tests.graph.signature_corpus import CASES, raw_message, score  # noqa: E402


def main() -> None:
    print("\n".join(score().lines()))
    mails = [parse(raw_message(case, i)) for i, case in enumerate(CASES)]
    for mail in mails:  # phonenumbers loads each region's metadata on first use
        findings_for(mail)
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        for mail in mails:
            findings_for(mail)
    per = (time.perf_counter() - started) / (rounds * len(mails))
    print(f"extraction: {per * 1e6:.0f} µs per message ({1 / per:,.0f} messages/s on one core)")


if __name__ == "__main__":
    main()
