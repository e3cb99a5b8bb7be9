"""Import of a mixed mbox, then export: exact counts, dates, companies and names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relayproxy import cli
from relayproxy.graph.strength import DEGREES
from tests.graph import mixed


@pytest.fixture
def team_config(tmp_path: Path) -> Path:
    path = tmp_path / "relayproxy.toml"
    path.write_text(mixed.TEAM_TOML.format(tmp=tmp_path))
    return path


@pytest.fixture
def imported(team_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    mbox = tmp_path / "alice.mbox"
    mbox.write_bytes(mixed.mbox())
    assert cli.main(["import", "--config", str(team_config), "--member", "alice@example.com", str(mbox)]) == 0
    summary = capsys.readouterr().out
    assert "11 messages read, 9 new, 1 duplicates, 1 unparsable" in summary
    return team_config


def export(config: Path, kind: str, capsys: pytest.CaptureFixture[str], fmt: str = "json") -> str:
    assert cli.main(["export", "--config", str(config), kind, "--format", fmt]) == 0
    return capsys.readouterr().out


def test_people_export_has_exact_figures(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    people = json.loads(export(imported, "people", capsys))
    by_email = {p["emails"][0]: p for p in people}
    assert set(by_email) == set(mixed.EXPECTED_PEOPLE)
    for email, expected in mixed.EXPECTED_PEOPLE.items():
        person = by_email[email]
        got = {
            "name": person["name"],
            "company": person["company"]["domain"] if person["company"] else None,
            **{k: person[k] for k in ("first_contacted", "last_contacted", "messages_sent", "messages_received")},
        }
        assert got == expected, email
        assert person["strength"] in DEGREES
        assert set(person["strength_by_member"]) <= {"alice@example.com"}


def test_people_item_shape_matches_design(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    people = json.loads(export(imported, "people", capsys))
    assert set(people[0]) == {
        "id", "name", "emails", "company", "first_contacted", "last_contacted",
        "messages_sent", "messages_received", "strength", "strength_by_member",
        "job_title", "phones", "links",  # enrichment (DESIGN.md)
    }
    jane = next(p for p in people if p["emails"] == ["jane@globex.com"])
    assert set(jane["company"]) == {"id", "name", "domain"}
    assert jane["company"]["name"] == "Globex"
    assert jane["strength_by_member"] == {"alice@example.com": jane["strength"]}


def test_companies_by_registrable_domain(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    companies = json.loads(export(imported, "companies", capsys))
    by_domain = {c["domain"]: c for c in companies}
    assert set(by_domain) == {"globex.com", "initech.co.uk", "hooli.com", "umbrella.io"}
    globex = by_domain["globex.com"]
    assert globex["people"] == 2
    assert (globex["messages_sent"], globex["messages_received"]) == (1, 1)
    assert globex["first_contacted"] == "2026-01-03T10:00:00Z"
    assert by_domain["initech.co.uk"]["name"] == "Initech"
    assert set(globex) == {
        "id", "name", "domain", "people", "first_contacted", "last_contacted", "messages_sent",
        "messages_received", "strength", "domains", "description", "website",
    }


def test_reimport_changes_nothing(imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = export(imported, "people", capsys)
    mbox = tmp_path / "alice.mbox"
    assert cli.main(["import", "--config", str(imported), "--member", "alice@example.com", str(mbox)]) == 0
    assert "0 new, 10 duplicates, 1 unparsable" in capsys.readouterr().out
    assert export(imported, "people", capsys) == before


def test_csv_export_has_a_header_and_a_row_per_person(imported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = export(imported, "people", capsys, fmt="csv").strip().splitlines()
    assert lines[0].startswith("id,name,emails,company")
    assert len(lines) == 1 + len(mixed.EXPECTED_PEOPLE)


def test_import_refuses_an_unknown_member(
    team_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.eml").write_bytes(mixed.MESSAGES[0])
    command = ["import", "--config", str(team_config), "--member", "eve@example.com", str(tmp_path / "x.eml")]
    assert cli.main(command) == 1
    assert "eve@example.com is not a team member" in capsys.readouterr().err


def test_import_reads_maildir_and_eml(team_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1:2,S").write_bytes(mixed.MESSAGES[0])
    (maildir / "new" / "2").write_bytes(mixed.MESSAGES[1])
    eml = tmp_path / "five.eml"
    eml.write_bytes(mixed.MESSAGES[4])
    command = ["import", "--config", str(team_config), "--member", "alice@example.com", str(maildir), str(eml)]
    assert cli.main(command) == 0
    assert "3 messages read, 3 new" in capsys.readouterr().out


def test_import_of_a_folder_without_mail_says_what_it_reads(
    team_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8\xff\xe0 not mail")
    command = ["import", "--config", str(team_config), "--member", "alice@example.com", str(tmp_path / "photos")]
    assert cli.main(command) == 0  # an empty folder is no error...
    out = capsys.readouterr()
    assert "0 messages read" in out.out and "no mail found in" in out.err  # ...but it is said


def test_the_console_script_runs(team_config: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relayproxy.cli", "check-config", "--config", str(team_config)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0
    assert "valid" in result.stdout
