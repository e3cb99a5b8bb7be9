"""Log lines for sessions: one event per line, each naming its session and member.

`SessionLog` prefixes a session's messages with ``session=smtp-12 member=alice@example.com``
so one client's story can be followed with grep. It never formats credentials or message
content: callers pass only addresses, peers, reasons and counts.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, MutableMapping
from typing import Any

_numbers = itertools.count(1)


def new_session_id(protocol: str) -> str:
    """A short id unique in this process: ``smtp-1``, ``imap-2``, …"""
    return f"{protocol}-{next(_numbers)}"


class SessionLog(logging.LoggerAdapter[logging.Logger]):
    """A logger for one session; the member is read when each line is written."""

    def __init__(self, logger: logging.Logger, session: str, member: Callable[[], str | None]) -> None:
        super().__init__(logger, {})
        self.session = session
        self._member = member

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"session={self.session} member={self._member() or '-'} {msg}", kwargs
