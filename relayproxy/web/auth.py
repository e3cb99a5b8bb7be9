"""Sign-in with the mail account: sessions for pages, HTTP Basic for the API.

There is no password store: `login_check(username, password)` asks the upstream IMAP server
(in production `relayproxy.imap.login.check_login`), and only configured team members get
in. Failed attempts lock the (username, client address) pair, and the client address alone,
for a time that doubles with each failure after the first few. Basic credentials that
worked are remembered for `BASIC_TTL` seconds under a keyed hash (a per-process random
salt), so the password is never kept in clear and the API does not log in upstream on every
request. Nothing here logs a password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from relayproxy.config import Settings

LoginCheck = Callable[[str, str], Awaitable[bool]]
BASIC_TTL = 60.0


class NotSignedIn(Exception):
    """The request has no session and no valid credentials."""


class TooManyAttempts(Exception):
    """Sign-in is locked for a while after failures."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"Too many failed sign-ins; try again in {self.retry_after} s.")


@dataclass
class Backoff:
    """Failures per key; after `free` failures a key is locked for 2**(n-free) seconds (at most `cap`)."""

    free: int = 3
    cap: float = 300.0
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def wait(self, *keys: str) -> float:
        """Seconds until any of `keys` may try again (0 when none is locked)."""
        now = time.monotonic()
        return max((self._failures.get(k, (0, 0.0))[1] - now for k in keys), default=0.0)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            count = self._failures.get(key, (0, 0.0))[0] + 1
            locked = min(self.cap, 2.0 ** (count - self.free)) if count >= self.free else 0.0
            self._failures[key] = (count, now + locked)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass
class Authenticator:
    """Checks credentials for the site: member list, backoff, the injected login check."""

    settings: Settings
    login_check: LoginCheck
    backoff: Backoff = field(default_factory=Backoff)
    _salt: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _basic: dict[bytes, tuple[str, float]] = field(default_factory=dict)

    async def sign_in(self, username: str, password: str, client: str) -> str | None:
        """The member's login when the credentials are good; None otherwise; raises TooManyAttempts."""
        name = username.strip().lower()
        keys = (f"user:{name}|{client}", f"client:{client}")
        wait = self.backoff.wait(*keys)
        if wait > 0:
            raise TooManyAttempts(wait)
        member = self.settings.member(name)
        ok = False
        if member is not None and password:
            try:
                ok = await self.login_check(member.login, password)
            except Exception:  # an unreachable upstream is a failed sign-in, not a crash
                ok = False
        if not ok:
            self.backoff.failed(keys[0])
            self._count_client(keys[1])
            return None
        self.backoff.succeeded(keys[0])
        return member.login if member else None

    def _count_client(self, key: str) -> None:
        # A client address gets more room than one username: several people may share it.
        count = self.backoff._failures.get(key, (0, 0.0))[0] + 1
        locked = min(self.backoff.cap, 2.0 ** (count - 20)) if count >= 20 else 0.0
        self.backoff._failures[key] = (count, time.monotonic() + locked)

    async def basic(self, header: str, client: str) -> str | None:
        """The member a `Authorization: Basic` header signs in, or None."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        digest = hmac.new(self._salt, f"{username.lower()}\0{password}".encode(), hashlib.sha256).digest()
        cached = self._basic.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        login = await self.sign_in(username, password, client)
        if login is not None:
            if len(self._basic) > 1000:
                self._basic.clear()
            self._basic[digest] = (login, time.monotonic() + BASIC_TTL)
        return login


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def signed_in(request: Request) -> str:
    """The signed-in member's login (session, or Basic under /api/); raises NotSignedIn."""
    login = request.session.get("login")
    authenticator: Authenticator = request.app.state.auth
    if isinstance(login, str) and authenticator.settings.member(login) is not None:
        return login
    header = request.headers.get("authorization", "")
    if header and request.url.path.startswith("/api/"):
        found = await authenticator.basic(header, client_address(request))
        if found is not None:
            return found
    raise NotSignedIn()


def session_secret(database: Path) -> str:
    """The session signing key, kept beside the database in `<database>.secret` (mode 0600)."""
    path = Path(f"{database}.secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def upstream_login_check(settings: Settings) -> LoginCheck:
    """The production check: the upstream IMAP server decides (relayproxy.imap.login)."""
    from relayproxy.imap.login import check_login

    async def check(username: str, password: str) -> bool:
        return await check_login(settings, username, password)

    return check
