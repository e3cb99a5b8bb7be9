"""Sealing members' mail credentials for continuous sync: Fernet (AES-128-CBC + HMAC-SHA256).

Theory of operation: a member who opts in to continuous sync lets relayproxy keep their mail
password so it can hold IDLE connections while their own client is closed. The password is
stored only as a Fernet token (the `cryptography` package), with a key that is never in the
database: the environment variable ``RELAYPROXY_SYNC_KEY`` when set, else the file named by
``sync.key_file``. Without a key, opting in is refused with a message that says how to make
one. Every error names where the key came from, and never contains a key or a password.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from relayproxy.config import Settings

ENVIRONMENT = "RELAYPROXY_SYNC_KEY"
MAKE_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())" > sync.key'
)


class SyncKeyError(Exception):
    """No key, or an unusable one, for sealing stored credentials; the message says what to do."""


class Unsealable(Exception):
    """A stored credential cannot be opened with the current key (changed, or not this one)."""


@dataclass(frozen=True)
class Credentials:
    """A member's user name and password for the upstream IMAP server; never printed."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__


def how_to_set_a_key() -> str:
    """One sentence on making a key and where to put it."""
    return (f"create a key with `{MAKE_KEY}` (readable only by relayproxy: chmod 600 sync.key) and set"
            f" sync.key_file to that file in the config, or put the key in the environment variable {ENVIRONMENT}.")


class SyncKey:
    """The key for stored credentials and where it came from (for error messages)."""

    def __init__(self, key: bytes, source: str) -> None:
        self.source = source
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise SyncKeyError(
                f"the key in {source} is not a Fernet key (32 bytes, URL-safe base64); {how_to_set_a_key()}"
            ) from None

    def __repr__(self) -> str:
        return f"SyncKey(source={self.source!r})"

    def seal(self, credentials: Credentials) -> bytes:
        """The credentials as an encrypted, authenticated token."""
        plain = json.dumps({"username": credentials.username, "password": credentials.password})
        return self._fernet.encrypt(plain.encode())

    def unseal(self, token: bytes) -> Credentials:
        """The credentials in `token`; raises Unsealable when this key did not seal it."""
        try:
            data = json.loads(self._fernet.decrypt(token))
            return Credentials(str(data["username"]), str(data["password"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise Unsealable(
                f"the stored credential cannot be decrypted with the key from {self.source}"
                " (was the key changed?); the member must opt in to continuous sync again"
            ) from None


def load_key(settings: Settings, environ: dict[str, str] | None = None) -> SyncKey:
    """The key from ``RELAYPROXY_SYNC_KEY``, else from ``sync.key_file``; SyncKeyError when neither works."""
    env = os.environ if environ is None else environ
    value = env.get(ENVIRONMENT, "").strip()
    if value:
        return SyncKey(value.encode(), f"the environment variable {ENVIRONMENT}")
    path = settings.sync_key_file
    if path is None:
        raise SyncKeyError(f"continuous sync needs a key to store mail passwords encrypted: {how_to_set_a_key()}")
    source = f"sync.key_file ({path})"
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise SyncKeyError(f"{source} cannot be read: {exc.strerror or exc}; {how_to_set_a_key()}") from None
    if not text:
        raise SyncKeyError(f"{source} is empty; {how_to_set_a_key()}")
    return SyncKey(text.encode(), source)
