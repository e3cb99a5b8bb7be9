"""CSV export of people and companies as the signed-in member may see them.

The same columns and rows serve `relayproxy export --format csv`. A cell that a spreadsheet would read as a
formula (starting with = + - @, tab or carriage return) gets a leading apostrophe: names and
subjects come from strangers' mail.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

PEOPLE = [
    "id",
    "name",
    "emails",
    "company",
    "company_domain",
    "first_contacted",
    "last_contacted",
    "messages_sent",
    "messages_received",
    "strength",
    "strength_by_member",
    "job_title",
    "phones",
    "links",
]
COMPANIES = [
    "id",
    "name",
    "domain",
    "people",
    "first_contacted",
    "last_contacted",
    "messages_sent",
    "messages_received",
    "strength",
    "domains",
    "description",
    "website",
]


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _person(item: dict[str, Any]) -> list[Any]:
    company = item["company"] or {}
    by_member = "; ".join(f"{m}: {d}" for m, d in item["strength_by_member"].items())
    return [
        item["id"],
        item["name"],
        " ".join(item["emails"]),
        company.get("name") or "",
        company.get("domain") or "",
        item["first_contacted"] or "",
        item["last_contacted"] or "",
        item["messages_sent"],
        item["messages_received"],
        item["strength"],
        by_member,
        item.get("job_title") or "",
        " ".join(item.get("phones") or []),
        " ".join(item.get("links") or []),
    ]


def _company(item: dict[str, Any]) -> list[Any]:
    return [
        item["id"],
        item["name"],
        item["domain"],
        item["people"],
        item["first_contacted"] or "",
        item["last_contacted"] or "",
        item["messages_sent"],
        item["messages_received"],
        item["strength"],
        " ".join(item["domains"]),
        item["description"] or "",
        item["website"] or "",
    ]


def to_csv(kind: str, items: Iterable[dict[str, Any]]) -> str:
    """`kind` is "people" or "companies"."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(PEOPLE if kind == "people" else COMPANIES)
    row = _person if kind == "people" else _company
    for item in items:
        writer.writerow([_cell(v) for v in row(item)])
    return out.getvalue()
