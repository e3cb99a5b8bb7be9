"""Config loading: defaults, every error names its key, check-config explains."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relayproxy import cli, config
from relayproxy.config import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "relayproxy.toml"


def load_text(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path)


def test_an_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "")
    assert settings.storage.database == tmp_path / "var/relayproxy.db"
    assert str(settings.imap.listen) == "127.0.0.1:1143"
    assert settings.smtp.upstream_security == "starttls"
    assert settings.sync_history_days == 365
    assert not settings.tls.enabled and settings.members == ()


def test_the_example_config_is_valid_and_documents_every_key() -> None:
    settings = config.load(EXAMPLE)
    assert settings.members
    text = EXAMPLE.read_text()
    for section, keys in config._SECTIONS.items():
        for key in keys:
            pattern = rf"^\[\[{section}\.{key}\]\]" if key == "members" else rf"^#?\s*{key}\s*="
            assert re.search(pattern, text, re.M), f"{section}.{key} is not documented in the example"
    for key in config._MEMBER_KEYS:
        assert re.search(rf"^#?\s*{key}\s*=", text, re.M), f"team.members.{key} is not documented"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[smtp]\nlisten = 'nohost'\n", "smtp.listen"),
        ("[smtp]\nlistn = '127.0.0.1:25'\n", "smtp.listn"),
        ("[nosuch]\n", "nosuch"),
        ("[imap]\nupstream_security = 'ssl'\n", "imap.upstream_security"),
        ("[sync]\nhistory_days = 'many'\n", "sync.history_days"),
        ("[capture]\nunknown_logins = 'yes'\n", "capture.unknown_logins"),
        ("[tls]\ncert = 'c.pem'\n", "tls.key"),
        ("[imap]\nlisten_tls = '127.0.0.1:993'\n", "imap.listen_tls"),
        ("[[team.members]]\nname = 'x'\n", "team.members[0].login"),
        ("[[team.members]]\nlogin = 'a'\nsharing = 'all'\n", "team.members[0].sharing"),
        ("[[team.members]]\nlogin = 'a'\naddresses = ['not an address']\n", "team.members[0].addresses"),
        ("[team]\ndomains = ['nodot']\n", "team.domains"),
        ("[web]\nlisten = '127.0.0.1:99999'\n", "web.listen"),
        ("[imap]\nlisten = '127.0.0.1:1143'\nupstream = '127.0.0.1:1143'\n", "imap.upstream"),  # to itself
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_text(tmp_path, text)
    assert error.value.key == key
    assert str(error.value).startswith(key)


def test_bad_toml_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[smtp\n")
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "missing.toml")


def test_logins_are_matched_case_insensitively(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "[[team.members]]\nlogin = 'Alice@Example.com'\n")
    assert settings.member("alice@EXAMPLE.com") is not None
    assert settings.members[0].addresses == ("alice@example.com",)
    assert settings.capture_login("eve@example.com") is None


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "--config", str(EXAMPLE)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nlisten = 'nohost'\n")
    assert cli.main(["check-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "smtp.listen" in err and "Traceback" not in err


def test_a_replaced_settings_object_has_its_own_member_lookup(tmp_path: Path) -> None:
    import dataclasses

    two = "[[team.members]]\nlogin = 'a@example.com'\n[[team.members]]\nlogin = 'b@example.com'\n"
    settings = load_text(tmp_path, two)
    fewer = dataclasses.replace(settings, members=settings.members[:1])
    assert fewer.member("b@example.com") is None
    assert settings.member("b@example.com") is not None
