"""Identity and company rules, on plain data."""

from __future__ import annotations

import pytest

from relayproxy.graph.companies import company_domain, company_name, is_free_mail, registrable_domain
from relayproxy.graph.identity import (
    Team,
    clean_display_name,
    is_automated_address,
    is_automated_message,
    name_from_local_part,
)


@pytest.mark.parametrize(
    ("domain", "registrable"),
    [("mail.acme.co.uk", "acme.co.uk"), ("eu.globex.com", "globex.com"), ("initech.co.uk", "initech.co.uk"),
     ("co.uk", None), ("localhost", None), ("127.0.0.1", None)],
)
def test_registrable_domain(domain: str, registrable: str | None) -> None:
    assert registrable_domain(domain) == registrable


def test_no_company_for_free_mail_or_the_team() -> None:
    assert is_free_mail("gmail.com") and is_free_mail("yahoo.co.uk")
    assert company_domain("gmail.com") is None
    assert company_domain("eu.example.com", ("example.com",)) is None
    assert company_domain("eu.globex.com", ("example.com",)) == "globex.com"


def test_company_name_from_domain() -> None:
    assert company_name("acme-robotics.com") == "Acme Robotics"
    assert company_name("mail.initech.co.uk") == "Initech"


@pytest.mark.parametrize("address", ["noreply@x.com", "no-reply@x.com", "do-not-reply@x.com", "mailer-daemon@x.com",
                                     "bounce+123@x.com", "notifications@github.com"])
def test_automated_addresses(address: str) -> None:
    assert is_automated_address(address)


@pytest.mark.parametrize("address", ["jane@x.com", "info@x.com", "noreen@x.com", "sales@x.com"])
def test_people_addresses(address: str) -> None:
    assert not is_automated_address(address)


@pytest.mark.parametrize(
    "headers",
    [{"list-id": ["<l.x.com>"]}, {"list-unsubscribe": ["<mailto:u@x.com>"]}, {"precedence": ["bulk"]},
     {"precedence": ["junk"]}, {"auto-submitted": ["auto-replied"]}, {"return-path": ["<>"]}],
)
def test_automated_messages(headers: dict[str, list[str]]) -> None:
    assert is_automated_message(headers)


def test_ordinary_messages_are_not_automated() -> None:
    assert not is_automated_message({"auto-submitted": ["no"], "return-path": ["<jane@x.com>"]})


def test_names() -> None:
    assert name_from_local_part("jane.doe42@x.com") == "Jane Doe"
    assert clean_display_name("Doe, Jane", "j@x.com") == "Jane Doe"
    assert clean_display_name("Acme, Inc.", "j@x.com") == "Acme, Inc."
    assert clean_display_name("j@x.com", "j@x.com") == ""
    assert clean_display_name('"Zoë Ødegård"', "z@x.com") == "Zoë Ødegård"


def test_team_rules() -> None:
    team = Team.build(["example.com"], [("alice@example.com", ["alice@example.com", "alice@home.net"])], ["spam.com"])
    assert team.member_for("ALICE@home.net") == "alice@example.com"
    assert not team.makes_person("alice@home.net")
    assert not team.makes_person("carol@sub.example.com")
    assert not team.makes_person("x@spam.com") and not team.makes_person("x@eu.spam.com")
    assert team.makes_person("jane@globex.com")
    assert not team.makes_person("not-an-address")
