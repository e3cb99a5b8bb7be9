"""Process-wide counters and gauges, rendered in the Prometheus text format.

The proxies and the ingest worker count what happens (`metrics.inc("capture_failures_total",
protocol="smtp")`); `/metrics` renders the lot. Plain dicts: one event loop thread and the
writer thread only ever add integers, which is safe enough under the GIL for counters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

_Labels = tuple[tuple[str, str], ...]

_HELP: dict[str, str] = {
    "connections_total": "Client connections accepted, per protocol.",
    "connections_open": "Client connections open now, per protocol.",
    "messages_relayed_total": "Messages relayed, per protocol.",
    "messages_captured_total": "Messages handed to capture, per protocol.",
    "capture_failures_total": "Captures that failed (mail still relayed), per protocol.",
    "parser_fallbacks_total": "IMAP connections that fell back to a blind byte pipe.",
    "journal_lag": "Journal entries accepted but not yet ingested.",
    "ingested_total": "Messages ingested into the graph.",
    "watch_connections": "Continuous sync: mailboxes with an IDLE connection open now.",
    "watch_failing": "Continuous sync: mailboxes whose watcher is retrying or stopped (see /settings).",
    "watch_not_started": "Continuous sync: opted-in members not watched (no key, or a changed one).",
    "watch_errors_total": "Continuous sync failures, per reason (signin and key are not retried).",
    "watch_messages_total": "Messages fetched by continuous sync.",
}

_counters: dict[str, dict[_Labels, float]] = defaultdict(lambda: defaultdict(float))
_gauges: dict[str, Callable[[], float]] = {}


def inc(name: str, amount: float = 1, **labels: str) -> None:
    """Add `amount` to counter `name` with `labels`."""
    _counters[name][tuple(sorted(labels.items()))] += amount


def value(name: str, **labels: str) -> float:
    """The current value of a counter (0 when never counted)."""
    return _counters.get(name, {}).get(tuple(sorted(labels.items())), 0)


def gauge(name: str, read: Callable[[], float]) -> None:
    """Register a gauge read at render time."""
    _gauges[name] = read


def reset() -> None:
    """Forget every counter and gauge (tests, and a fresh serve)."""
    _counters.clear()
    _gauges.clear()


def render() -> str:
    """All metrics in the Prometheus text exposition format."""
    lines: list[str] = []
    for name in sorted(set(_counters) | set(_gauges)):
        full = f"relayproxy_{name}"
        if name in _HELP:
            lines.append(f"# HELP {full} {_HELP[name]}")
        if name in _gauges:
            lines.append(f"# TYPE {full} gauge")
            try:
                lines.append(f"{full} {float(_gauges[name]())}")
            except Exception:  # a gauge that cannot be read is left out, not fatal
                lines.pop()
            continue
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE {full} {kind}")
        for labels, amount in sorted(_counters[name].items()):
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{full}{{{text}}} {amount:g}" if text else f"{full} {amount:g}")
    return "\n".join(lines) + "\n"
