"""Helpers for IMAP tests and the benchmark: proxy settings, and the mbsync client."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from relayproxy.config import Settings, parse


def proxy_settings(
    upstream: str,
    security: str,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    ca: Path | None = None,
    members: list[str] | tuple[str, ...] = (),
    listen_tls: bool = False,
) -> Settings:
    """Settings for an IMAP proxy on OS-chosen loopback ports."""
    data: dict[str, Any] = {
        "imap": {
            "listen": "127.0.0.1:0",
            "upstream": upstream,
            "upstream_security": security,
        },
        "team": {
            "domains": ["example.com"],
            "members": [{"login": m} for m in members],
        },
    }
    if listen_tls:
        data["imap"]["listen_tls"] = "127.0.0.1:0"
    if cert is not None and key is not None:
        data["tls"] = {"cert": str(cert), "key": str(key)}
    if ca is not None:
        data.setdefault("tls", {})["upstream_ca"] = str(ca)
    return parse(data)


MBSYNC_CONFIG = """\
FSync no

IMAPAccount remote
Host {host}
Port {port}
User {user}
Pass {password}
SSLType {ssl_type}
{certificate}AuthMechs LOGIN

IMAPStore remote
Account remote

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel pull
Far :remote:
Near :local:
Patterns INBOX
Sync Pull
Create Near
SyncState *
"""


def mbsync_config(
    folder: Path, port: int, user: str, password: str, ssl_type: str = "None",
    ca: Path | None = None, host: str = "localhost",
) -> Path:
    """Write an mbsync config that pulls INBOX into `folder`/mail; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    maildir = folder / "mail"
    if maildir.exists():
        shutil.rmtree(maildir)
    maildir.mkdir()
    config = folder / "mbsyncrc"
    config.write_text(MBSYNC_CONFIG.format(
        host=host, port=port, user=user, password=password, ssl_type=ssl_type,
        certificate=f"CertificateFile {ca}\n" if ca else "", maildir=maildir,
    ))
    config.chmod(0o600)
    return config


def run_mbsync(config: Path) -> None:
    """A full pull with mbsync (blocking)."""
    result = subprocess.run(
        ["mbsync", "-q", "-c", str(config), "pull"], capture_output=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"mbsync failed ({result.returncode}): {result.stderr.decode()[-2000:]}")


async def run_mbsync_async(config: Path) -> None:
    await asyncio.to_thread(run_mbsync, config)


_TUID = re.compile(rb"^X-TUID: [^\n]*\n", re.M)


def maildir_messages(folder: Path) -> list[bytes]:
    """The messages mbsync stored under `folder`/mail, sorted by content hash.

    mbsync adds an `X-TUID` header of its own (a random per-transfer id) to each copy; it is
    removed so that copies from different runs compare equal.
    """
    found = []
    for root, _dirs, files in os.walk(folder / "mail"):
        if os.path.basename(root) in ("cur", "new"):
            found += [_TUID.sub(b"", Path(root, f).read_bytes(), count=1) for f in files]
    return sorted(found, key=lambda b: hashlib.sha256(b).digest())
