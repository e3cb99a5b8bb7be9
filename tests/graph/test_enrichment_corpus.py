"""Acceptance for enrichment on the signature corpus: titles right for ≥ 90 % of senders whose
signature states one, never a title from quoted or forwarded text, phones in E.164."""

from __future__ import annotations

import pytest

from relayproxy.graph.ingest import prepare
from tests.graph.signature_corpus import CASES, Case, raw_message, score


def test_acceptance_figures() -> None:
    result = score()
    print("\n".join(result.lines()))
    assert result.title_rate >= 0.9
    assert result.quoted_taken == []
    assert result.phones_not_e164 == []
    assert result.phone_rate >= 0.9


@pytest.mark.parametrize("case", [c for c in CASES if c.quoted_title], ids=lambda c: c.name)
def test_title_never_from_quoted_text(case: Case) -> None:
    mail = prepare(raw_message(case), None)
    facts = mail.enrichment.signature if mail.enrichment else None
    assert (facts.job_title if facts else None) == case.title


@pytest.mark.parametrize("case", [c for c in CASES if c.company], ids=lambda c: c.name)
def test_company_as_written(case: Case) -> None:
    mail = prepare(raw_message(case), None)
    assert mail.enrichment is not None and mail.enrichment.signature is not None
    assert mail.enrichment.signature.company == case.company


@pytest.mark.parametrize("case", [c for c in CASES if c.links], ids=lambda c: c.name)
def test_links(case: Case) -> None:
    mail = prepare(raw_message(case), None)
    assert mail.enrichment is not None and mail.enrichment.signature is not None
    assert set(case.links) <= set(mail.enrichment.signature.links)


def test_organization_header_is_read() -> None:
    case = next(c for c in CASES if c.organization)
    mail = prepare(raw_message(case), None)
    assert mail.enrichment is not None and mail.enrichment.organization == case.organization
