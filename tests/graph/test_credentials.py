"""Stored credentials for continuous sync: sealed, never in clear, and the key's errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from relayproxy import config, sealing
from relayproxy.graph import Graph, credentials, watch_state
from relayproxy.sealing import Credentials, SyncKeyError, Unsealable, load_key

PASSWORD = "correct horse battery staple"


def with_key_file(settings: config.Settings, path: Path | None) -> config.Settings:
    return dataclasses.replace(settings, sync_key_file=path)


def test_a_sealed_credential_is_not_in_the_database_file_in_clear(graph: Graph, tmp_path: Path) -> None:
    key = sealing.SyncKey(Fernet.generate_key(), "a test")
    sealed = key.seal(Credentials("alice@example.com", PASSWORD))
    graph.store.write_sync(lambda conn: credentials.save(conn, "alice@example.com", sealed, "2026-01-01T00:00:00Z"))
    graph.close()
    raw = b"".join(p.read_bytes() for p in Path(graph.settings.storage.database).parent.glob("*.db*"))
    assert PASSWORD.encode() not in raw and sealed in raw
    graph2 = Graph(graph.settings)
    try:
        with graph2.store.read() as conn:
            [(member, token)] = credentials.all_sealed(conn)
        assert member == "alice@example.com" and key.unseal(token) == Credentials("alice@example.com", PASSWORD)
    finally:
        graph2.close()


def test_deleting_a_credential_forgets_the_watch_positions_too(graph: Graph) -> None:
    def setup(conn: object) -> None:
        credentials.save(conn, "bob@example.com", b"token", "now")  # type: ignore[arg-type]
        watch_state.start_at(conn, "bob@example.com", "INBOX", 7, 10, "now")  # type: ignore[arg-type]

    graph.store.write_sync(setup)
    assert graph.store.write_sync(lambda conn: credentials.delete(conn, "bob@example.com"))
    with graph.store.read() as conn:
        assert not credentials.stored(conn, "bob@example.com")
        assert watch_state.position(conn, "bob@example.com", "INBOX") is None


def test_without_a_key_the_error_says_how_to_make_one(settings: config.Settings) -> None:
    with pytest.raises(SyncKeyError) as caught:
        load_key(with_key_file(settings, None), environ={})
    message = str(caught.value)
    assert "Fernet.generate_key()" in message and "sync.key_file" in message and "RELAYPROXY_SYNC_KEY" in message


def test_a_key_file_that_is_missing_or_not_a_key_is_named(settings: config.Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(SyncKeyError, match=r"sync.key_file \(.*nope.key\) cannot be read"):
        load_key(with_key_file(settings, missing), environ={})
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(SyncKeyError, match=r"bad.key\) is not a Fernet key"):
        load_key(with_key_file(settings, bad), environ={})
    with pytest.raises(SyncKeyError, match="environment variable RELAYPROXY_SYNC_KEY is not a Fernet key"):
        load_key(settings, environ={"RELAYPROXY_SYNC_KEY": "short"})


def test_the_environment_wins_over_the_file_and_a_wrong_key_cannot_unseal(
    settings: config.Settings, tmp_path: Path
) -> None:
    path = tmp_path / "sync.key"
    path.write_text(Fernet.generate_key().decode() + "\n")
    from_file = load_key(with_key_file(settings, path), environ={})
    from_env = load_key(with_key_file(settings, path), environ={"RELAYPROXY_SYNC_KEY": Fernet.generate_key().decode()})
    assert "sync.key_file" in from_file.source and "RELAYPROXY_SYNC_KEY" in from_env.source
    sealed = from_file.seal(Credentials("a@example.com", PASSWORD))
    with pytest.raises(Unsealable, match="cannot be decrypted with the key from the environment variable"):
        from_env.unseal(sealed)
    assert PASSWORD not in repr(from_file.unseal(sealed)) and PASSWORD not in repr(from_file)
