"""Who is a person: the team, automated senders, exclusions and names.

Pure functions on addresses and headers. A correspondent becomes a person unless the
address is the team's own (a member's address or anywhere under a team domain), looks
automated (no-reply style local parts, bounces), or is excluded. A whole message is
automated when its headers say so (RFC 3834 `Auto-Submitted`, RFC 2369/2919 list headers,
`Precedence: bulk|list|junk`, an empty `Return-Path` of a bounce); such mail is stored but
makes no people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

_AUTOMATED_LOCAL = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|mailer[-_.]?daemon|postmaster|"
    r"bounces?|notifications?|notify|alerts?|auto[-_.]?(reply|responder|mailer)|daemon|"
    r"listserv|majordomo|mailman|news(letter)?s?|unsubscribe|info[-_.]?noreply)([-_.+].*)?$"
    r"|^.*[-_.+](no[-_.]?reply|bounces?)([-_.+].*)?$",
    re.I,
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_ADDRESS = re.compile(rf"^[^@\s<>()\[\],;:\"]+@{_LABEL}(?:\.{_LABEL})+$", re.I)
_NAME_PART = re.compile(r"[^\W\d_][\w'.-]*(?: [^\W\d_][\w'.-]*)?")


_COMPANY_SUFFIXES = {"inc", "llc", "ltd", "gmbh", "ag", "sa", "bv", "co", "corp", "plc", "oy", "ab", "srl", "spa"}


def is_valid_address(address: str) -> bool:
    """A plausible addr-spec with a dotted domain."""
    return len(address) <= 254 and _ADDRESS.match(address) is not None


def is_automated_address(address: str) -> bool:
    """No-reply style local parts and bounce addresses."""
    local = address.rpartition("@")[0]
    return bool(_AUTOMATED_LOCAL.match(local))


def is_automated_message(headers: Mapping[str, list[str]]) -> bool:
    """True when the headers mark the message as automated or bulk."""
    def first(name: str) -> str:
        values = headers.get(name)
        return values[0].strip().lower() if values else ""

    if headers.get("list-id") or headers.get("list-unsubscribe"):
        return True
    if first("precedence") in ("bulk", "list", "junk"):
        return True
    auto = first("auto-submitted")
    if auto and auto != "no":
        return True
    if headers.get("x-autoreply"):
        return True
    return "return-path" in headers and first("return-path") in ("<>", "")  # a bounce


def name_from_local_part(address: str) -> str:
    """``jane.doe42@x`` → ``Jane Doe``; used when no display name is known."""
    local = address.rpartition("@")[0].split("+")[0]
    words = [w for w in re.split(r"[._\-]+", re.sub(r"\d+", " ", local)) for w in w.split() if w]
    if not words:
        return local or address
    return " ".join(w[:1].upper() + w[1:] for w in words)


@lru_cache(maxsize=65536)  # the same people write again and again
def clean_display_name(name: str, address: str) -> str:
    """A usable person name from a display name, or "" (empty, an address, or junk)."""
    text = " ".join(name.replace('"', " ").split()).strip(" '")
    if not text or "@" in text or text.lower() == address.lower():
        return ""
    # "Doe, Jane" → "Jane Doe" (two simple words around one comma).
    parts = [p.strip() for p in text.split(",")]
    is_company = len(parts) == 2 and parts[1].lower().rstrip(".") in _COMPANY_SUFFIXES
    if len(parts) == 2 and not is_company and all(_NAME_PART.fullmatch(p) for p in parts):
        text = f"{parts[1]} {parts[0]}"
    return text[:200]


@dataclass(frozen=True)
class Team:
    """The team's own addresses and domains, and which member owns each address."""

    domains: tuple[str, ...] = ()
    member_of_address: Mapping[str, str] = field(default_factory=dict)  # address → login
    excluded: frozenset[str] = frozenset()  # addresses and domains
    _verdicts: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)  # makes_person cache

    @classmethod
    def build(
        cls, domains: Iterable[str], members: Iterable[tuple[str, Iterable[str]]], excluded: Iterable[str] = ()
    ) -> Team:
        owners: dict[str, str] = {}
        for login, addresses in members:
            for address in addresses:
                owners[address.lower()] = login
            if "@" in login:
                owners.setdefault(login.lower(), login)
        return cls(tuple(d.lower() for d in domains), owners, frozenset(e.lower() for e in excluded))

    def member_for(self, address: str) -> str | None:
        return self.member_of_address.get(address.lower())

    def is_team_address(self, address: str) -> bool:
        address = address.lower()
        if address in self.member_of_address:
            return True
        domain = address.rpartition("@")[2]
        return any(domain == d or domain.endswith("." + d) for d in self.domains)

    def is_excluded(self, address: str) -> bool:
        if not self.excluded:
            return False
        address = address.lower()
        domain = address.rpartition("@")[2]
        if address in self.excluded or domain in self.excluded:
            return True
        return any(domain.endswith("." + e) for e in self.excluded if "@" not in e)

    def makes_person(self, address: str) -> bool:
        """Whether mail with `address` makes (or counts for) a person."""
        known = self._verdicts.get(address)
        if known is not None:
            return known
        verdict = (
            is_valid_address(address)
            and not self.is_team_address(address)
            and not is_automated_address(address)
            and not self.is_excluded(address)
        )
        if len(self._verdicts) < 200_000:
            self._verdicts[address] = verdict
        return verdict
