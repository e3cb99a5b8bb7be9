"""Enrichment: what the mail itself says about its sender, as pure functions.

Theory of operation. A person's own mail describes them: the signature block under what they
wrote (job title, phone numbers, the company as they write it, their website and profiles), the
display name their client puts on `From`, the `Organization` header, and vCards they attach.
`extract()` runs off the writer (in `prepare`), on the *newest part* of the message only — the
text above the quoted history — so a title or phone quoted from someone else's mail, or found
in a forwarded message, is never taken for the sender's. The writer only stores what it found
(`relayproxy.graph.enrich_store`), with provenance and a confidence per value.

Signature lines are split at the usual separators (line breaks, `|`, `•`) and each piece is
classified: phone numbers are found and normalised to E.164 by `phonenumbers` (the region for
numbers written without a country code comes from the sender's country-code domain); links are
recognised by host (LinkedIn, X/Twitter, GitHub, else a website); a job title is a piece that
names a role in one of the common languages ("Head of Sales", "Geschäftsführer", "Directrice
commerciale"); the company is a piece that matches the sender's domain or carries a legal form
("GmbH", "Inc."). Disclaimers and "Sent from my phone" lines end the block.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import phonenumbers

from relayproxy.graph.companies import company_name, registrable_domain
from relayproxy.graph.identity import is_automated_address, is_automated_message
from relayproxy.graph.text import _signature_start, quote_start

if TYPE_CHECKING:
    from relayproxy.graph.mail import ParsedMail

# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Card:
    """One vCard: who it describes and what it says about them."""

    name: str | None
    emails: tuple[str, ...]
    job_title: str | None
    company: str | None
    phones: tuple[str, ...]
    links: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignatureFacts:
    """What a signature block says about its author."""

    job_title: str | None = None
    title_confidence: float = 0.0
    phones: tuple[str, ...] = ()
    company: str | None = None  # as written
    company_confidence: float = 0.0
    links: tuple[str, ...] = ()
    website: str | None = None  # the link that is the company's own site

    @property
    def empty(self) -> bool:
        return not (self.job_title or self.phones or self.company or self.links)


@dataclass(frozen=True, slots=True)
class Findings:
    """Everything enrichment found in one message, ready for the writer."""

    signature: SignatureFacts | None = None
    organization: str | None = None  # the Organization header, cleaned
    cards: tuple[Card, ...] = field(default_factory=tuple)


# --- vocabulary --------------------------------------------------------------------------

# Roles, in the languages the reply parser knows. Matched as words (case-insensitive), except
# the acronyms, which must be upper-case so "cto" in running text does not count.
_ROLE_WORDS = (
    # English
    "chief", "officer", "president", "vice president", "director", "head of", "manager", "engineer",
    "developer", "founder", "co-founder", "cofounder", "partner", "consultant", "analyst", "designer",
    "architect", "lead", "team lead", "specialist", "coordinator", "associate", "counsel", "attorney",
    "lawyer", "solicitor", "recruiter", "owner", "chair", "chairman", "chairwoman", "principal",
    "scientist", "researcher", "professor", "lecturer", "assistant", "executive", "administrator",
    "advisor", "adviser", "accountant", "controller", "treasurer", "secretary", "editor", "journalist",
    "producer", "strategist", "representative", "agent", "broker", "buyer", "planner", "technician",
    "programmer", "officer", "intern", "trainee", "supervisor", "superintendent", "officer",
    "evangelist", "advocate", "program manager", "project manager",
    "general manager", "physician", "doctor", "nurse",
    "teacher", "paralegal", "auditor", "economist", "investor", "student", "phd",
    # German (compounds: matched inside words, see _ROLE_STEMS)
    "geschäftsführer", "geschäftsführerin", "vorstand", "inhaber", "inhaberin", "gründer", "gründerin",
    "prokurist", "prokuristin", "sachbearbeiter", "sachbearbeiterin", "leiter", "leiterin", "berater",
    "beraterin", "entwickler", "entwicklerin", "referent", "referentin", "assistent", "assistentin",
    "mitarbeiter", "mitarbeiterin", "kundenbetreuer", "kundenbetreuerin", "rechtsanwalt", "rechtsanwältin",
    "steuerberater", "steuerberaterin", "werkstudent", "werkstudentin", "direktor", "direktorin",
    # French
    "directeur", "directrice", "responsable", "ingénieur", "ingénieure", "chef de", "cheffe de",
    "fondateur", "fondatrice", "gérant", "gérante", "chargé", "chargée", "développeur", "développeuse",
    "conseiller", "conseillère", "avocat", "avocate", "associé", "associée",
    "président", "présidente", "comptable", "chercheur", "chercheuse",
    # Spanish / Portuguese / Italian
    "director", "directora", "gerente", "jefe", "jefa", "ingeniero", "ingeniera", "desarrollador",
    "desarrolladora", "fundador", "fundadora", "socio", "socia", "consultor", "consultora", "asesor",
    "asesora", "abogado", "abogada", "presidente", "responsabile", "direttore", "direttrice",
    "amministratore", "sviluppatore", "ingegnere", "titolare", "diretor", "diretora", "engenheiro",
    "engenheira", "analista", "coordenador", "coordenadora", "coordinador", "coordinadora",
    # Dutch / Scandinavian / Polish / Czech
    "directeur", "eigenaar", "oprichter", "adviseur", "medewerker", "verkoper", "ontwikkelaar",
    "utvecklare", "konsult", "säljare", "projektledare", "dyrektor", "kierownik",
    "prezes", "właściciel", "specjalista", "programista", "ředitel", "jednatel", "vedoucí",
)
_ROLE_STEMS = (  # German and Dutch compounds: "Vertriebsleiter", "Softwareentwickler"
    "leiter", "leiterin", "führer", "führerin", "berater", "beraterin", "entwickler", "entwicklerin",
    "ingenieur", "ingenieurin", "manager", "managerin", "direktor", "direktorin", "referent",
    "referentin", "assistent", "assistentin", "architekt", "architektin", "spezialist", "spezialistin",
    "beauftragter", "beauftragte", "ontwikkelaar", "adviseur",
)
_ROLE = re.compile(
    r"(?<![\w-])(?:" + "|".join(sorted((re.escape(w) for w in set(_ROLE_WORDS)), key=len, reverse=True)) + r")(?![\w])"
    r"|\w(?:" + "|".join(_ROLE_STEMS) + r")\b",
    re.IGNORECASE,
)
# Acronyms that name a role on their own (the others only qualify one: "HR", "EMEA").
_ROLE_ACRONYM = re.compile(r"(?<![\w&])(?:C[A-Z]{1,3}O|S?E?VP|AVP|GM|MD)(?![\w&])")

_LEGAL_FORM = re.compile(
    r"(?<![\w])(?:Inc|Incorporated|Ltd|Limited|LLC|LLP|L\.L\.C|PLC|Corp|Corporation|Co|Company|GmbH|gGmbH|AG|KG|"
    r"OHG|UG|e\.V|SE|SA|S\.A|SAS|SARL|S\.à r\.l|SL|S\.L|SpA|S\.p\.A|Srl|S\.r\.l|BV|B\.V|NV|N\.V|Pty|Oy|AB|AS|A/S|"
    r"ApS|sp\. z o\.o|s\.r\.o|KK|Group|Holdings|Labs|Technologies|Solutions|Systems|Consulting|Partners)\.?(?![\w])"
)
_SIGN_OFF = re.compile(
    r"^(?:best|kind|warm|warmest|many|all the best|regards|cheers|thanks|thank you|thx|sincerely|yours|br|"
    r"mit freundlichen grüßen|mit freundlichen grüssen|mfg|viele grüße|beste grüße|liebe grüße|grüße|gruß|"
    r"cordialement|bien à vous|salutations|bien cordialement|saludos|atentamente|un saludo|cordiali saluti|"
    r"distinti saluti|saluti|met vriendelijke groet|groeten|atenciosamente|abraços|obrigado|obrigada|"
    r"med vänliga hälsningar|vänliga hälsningar|hälsningar|mvh|pozdrawiam|z poważaniem|s pozdravem|"
    r"venlig hilsen|gracias|merci|danke)\b",
    re.IGNORECASE,
)
_DISCLAIMER = re.compile(
    r"^(?:\W*)(?:confidential|confidentiality|this e-?mail|this message|this communication|the information|"
    r"disclaimer|notice|important|privileged|please consider|please think|think before|sent from|"
    r"get outlook|sent with|diese e-?mail|diese nachricht|der inhalt|ce message|ce courriel|ce mail|"
    r"este mensaje|este correo|questo messaggio|dit bericht|deze e-?mail|gesendet von|envoyé de|"
    r"enviado desde|inviato da|verzonden vanaf|skickat från|wysłano z|unsubscribe|registered office|"
    r"sitz der gesellschaft|registergericht|handelsregister|amtsgericht|ust-id|vat)",
    re.IGNORECASE,
)
_PHONE_LABEL = re.compile(
    r"^\s*(?:t|tel|tél|tele|telefon|téléphone|telephone|phone|ph|p|m|mob|mobile|mobil|cell|handy|móvil|movil|"
    r"cellulare|celular|portable|direct|office|o|w|work|d|dir)\b\.?\s*[:.]?\s*",
    re.IGNORECASE,
)
_FAX = re.compile(r"\b(?:fax|telefax|télécopie)\b", re.IGNORECASE)
_SEPARATORS = re.compile(r"\s+[|•·◦▪︱∙]\s+|\s*[|•︱]\s*|\s{3,}|\t+")
_TITLE_AT = re.compile(r"^(?P<title>.+?)\s+(?:at|@|bei|chez|presso|bij)\s+(?P<company>\S.*)$")
_TITLE_SPLIT = re.compile(r"\s*(?:,|\s[-–—]\s)\s*")
_LABEL = re.compile(r"^(?:title|position|role|job title|funktion|poste|cargo|ruolo)\s*:\s*", re.IGNORECASE)

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()\[\]{}|,]+", re.IGNORECASE)
_BARE_HOST = re.compile(r"(?<![@\w.-])((?:[a-z0-9-]+\.)+[a-z]{2,24})(/[^\s<>\"'()\[\]{}|,]*)?(?![\w@-])", re.I)
_LINKEDIN = re.compile(r"(?:https?://)?(?:[a-z]{2,3}\.)?linkedin\.com/(in|company|pub)/([^\s/?#<>\"')\]|,]+)", re.I)
_TWITTER = re.compile(
    r"(?:https?://)?(?:www\.|mobile\.)?(?:twitter|x)\.com/(?!intent\b|share\b|home\b|i/|search\b)(\w{1,15})\b", re.I
)
_GITHUB = re.compile(r"(?:https?://)?(?:www\.)?github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))(?![\w-])", re.I)
_HANDLE = re.compile(r"^(?:twitter|x|github)\s*[:：]?\s*@?(\w{1,39})$", re.I)
# Hosts that are never someone's website: social sites (handled above), mail and meeting services.
_NOT_WEBSITES = frozenset({
    "linkedin.com", "twitter.com", "x.com", "github.com", "facebook.com", "instagram.com", "youtube.com",
    "google.com", "goo.gl", "bit.ly", "aka.ms", "outlook.com", "office.com", "microsoft.com", "apple.com",
    "zoom.us", "teams.microsoft.com", "calendly.com", "mailchimp.com", "t.co", "tiktok.com",
})
_HTML_QUOTE = re.compile(
    r"<blockquote|class=\"?gmail_quote|id=\"?divRplyFwdMsg|id=\"?appendonsend|-----Original Message-----|"
    r"class=\"?moz-cite-prefix|id=\"?mail-editor-reference-message-container|<hr\b",
    re.IGNORECASE,
)
_HREF = re.compile(r"href\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_CCTLD_REGION = {"uk": "GB", "gb": "GB", "eu": "", "io": "", "co": "", "ai": "", "me": "", "tv": "", "ly": ""}
_MAX_LINES = 14  # a signature is short; what follows is disclaimer or quoted text
_MAX_PIECE = 80


# --- phones ------------------------------------------------------------------------------


def region_for(domain: str) -> str:
    """The phone region to assume for numbers written nationally: the domain's country, else US."""
    tld = domain.rsplit(".", 1)[-1].lower() if domain else ""
    if tld in _CCTLD_REGION:
        return _CCTLD_REGION[tld] or "US"
    if len(tld) == 2 and tld.upper() in phonenumbers.SUPPORTED_REGIONS:
        return tld.upper()
    return "US"


def normalise_phone(text: str, region: str = "US") -> str | None:
    """One phone number as E.164 (`+14155550132`), or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def find_phones(text: str, region: str = "US") -> list[str]:
    """Every valid phone number in `text` (fax lines skipped), as E.164, in order, once each."""
    found: dict[str, None] = {}
    for line in text.splitlines():
        if sum(c.isdigit() for c in line) < 5 or _FAX.search(line):
            continue  # no number here: the matcher is the costly part of enrichment
        for match in phonenumbers.PhoneNumberMatcher(line, region, leniency=phonenumbers.Leniency.VALID):
            found[phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)] = None
    return list(found)


# --- links -------------------------------------------------------------------------------


def profile_link(url: str) -> str | None:
    """A canonical profile URL for LinkedIn, X/Twitter or GitHub, or None for other links."""
    if m := _LINKEDIN.search(url):
        return f"https://www.linkedin.com/{m.group(1).lower()}/{m.group(2).rstrip('.')}"
    if m := _TWITTER.search(url):
        return f"https://x.com/{m.group(1)}"
    if m := _GITHUB.search(url):
        return f"https://github.com/{m.group(1)}"
    return None


def website_link(url: str) -> str | None:
    """`www.globex.com/x` → `https://www.globex.com`; None for social, mail and link-shortener hosts."""
    text = url.strip().rstrip(".;:")
    if "@" in text.split("/", 3)[-1] and "://" not in text:
        return None
    host = re.sub(r"^https?://", "", text, flags=re.I).split("/", 1)[0].split(":", 1)[0].lower()
    registrable = registrable_domain(host)
    if registrable is None or registrable in _NOT_WEBSITES or host in _NOT_WEBSITES:
        return None
    return f"https://{host}"


def find_links(text: str) -> tuple[list[str], list[str]]:
    """(profile links, website links) in `text`, canonical, in order, once each."""
    profiles: dict[str, None] = {}
    sites: dict[str, None] = {}
    for line in text.splitlines():
        handle = _HANDLE.match(line.strip())
        if handle:
            host = "github.com" if line.strip()[:1].lower() == "g" else "x.com"
            profiles[f"https://{host}/{handle.group(1)}"] = None
            continue
        spans: list[str] = [m.group(0) for m in _URL.finditer(line)]
        rest = _URL.sub(" ", line)
        spans += [m.group(0) for m in _BARE_HOST.finditer(rest) if "@" not in m.group(0)]
        for span in spans:
            profile = profile_link(span)
            if profile:
                profiles[profile] = None
                continue
            site = website_link(span)
            if site:
                sites[site] = None
    return list(profiles), list(sites)


def html_signature_links(markup: str) -> list[str]:
    """Profile links from the `href`s of an HTML body's newest part (HTML signatures hide URLs)."""
    if not markup:
        return []
    cut = _HTML_QUOTE.search(markup)
    newest = markup[: cut.start()] if cut else markup
    found: dict[str, None] = {}
    for href in _HREF.findall(newest[-6000:]):
        profile = profile_link(href)
        if profile:
            found[profile] = None
    return list(found)


# --- the signature -----------------------------------------------------------------------


def _name_tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[\s,.'\"()-]+", name.casefold()) if len(t) > 1}


def _is_name(piece: str, name_tokens: set[str]) -> bool:
    tokens = _name_tokens(piece)
    return bool(tokens) and bool(name_tokens) and len(tokens & name_tokens) >= min(2, len(name_tokens)) and len(
        tokens - name_tokens
    ) <= 1


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


def matches_domain(name: str, domain: str) -> bool:
    """True when a written company name is the company of `domain` ("Acme Robotics" ~ acme-robotics.com)."""
    registrable = registrable_domain(domain) if domain else None
    if not registrable:
        return False
    label = _squash(registrable.split(".")[0])
    written = _squash(_LEGAL_FORM.sub("", name))
    if len(label) < 2 or not written:
        return False
    return written == label or (len(label) >= 4 and (written.startswith(label) or label.startswith(written)))


def clean_company(text: str) -> str:
    """A company name as written, trimmed of punctuation and labels."""
    text = re.sub(r"^(?:company|firma|société|empresa|azienda)\s*:\s*", "", text.strip(), flags=re.I)
    return text.strip(" \t,;:|-–—•")


def is_role(text: str) -> bool:
    """True when `text` names a job (a role word or a C-level acronym)."""
    return bool(_ROLE.search(text) or _ROLE_ACRONYM.search(text))


def _title_candidate(piece: str) -> bool:
    if len(piece) > _MAX_PIECE or len(piece.split()) > 10 or len(piece) < 2:
        return False
    if "@" in piece or _URL.search(piece) or sum(c.isdigit() for c in piece) >= 4:
        return False
    if piece.endswith(("?", "!")) or (piece.endswith(".") and len(piece.split()) > 5):
        return False  # a sentence, not a title
    return is_role(piece)


def _split_title(piece: str, domain: str, organization: str) -> tuple[str, str | None]:
    """`Head of Sales at Globex` → (`Head of Sales`, `Globex`); the company only when it is one."""
    found = _TITLE_AT.match(piece)
    if found and not is_role(found.group("company")):
        return found.group("title").strip(), clean_company(found.group("company"))
    parts = _TITLE_SPLIT.split(piece)
    if len(parts) > 1:
        rest = clean_company(piece[len(parts[0]) :])
        if rest and _is_company(rest, domain, organization):
            return parts[0].strip(), rest
    return piece, None


def _is_company(piece: str, domain: str, organization: str) -> bool:
    if not piece or len(piece) > _MAX_PIECE or "@" in piece or _URL.search(piece):
        return False
    if sum(c.isdigit() for c in piece) >= 4:
        return False
    if organization and _squash(piece) == _squash(organization):
        return True
    return matches_domain(piece, domain) or bool(_LEGAL_FORM.search(piece) and not is_role(piece))


def _pieces(block: str) -> list[str]:
    """Signature lines split at separators, sign-off dropped, stopped at a disclaimer."""
    pieces: list[str] = []
    lines = [line.strip() for line in block.splitlines()]
    for index, line in enumerate(lines):
        if not line or line in ("--", "-- ", "__"):
            continue
        if index < 3 and not pieces and _SIGN_OFF.match(line) and len(line) < 50:
            continue
        if _DISCLAIMER.match(line) or len(line) > 160:
            break
        pieces.extend(p.strip() for p in _SEPARATORS.split(line) if p.strip())
        if len(pieces) >= _MAX_LINES * 2:
            break
    return pieces


@lru_cache(maxsize=8192)
def parse_signature(block: str, *, sender_name: str = "", sender_address: str = "",
                    organization: str = "") -> SignatureFacts:
    """The facts a signature block states about its author (the sender of the message).

    Cached: people sign every message the same way, and reading phone numbers is the slow part.
    """
    domain = sender_address.rpartition("@")[2].lower()
    region = region_for(domain)
    pieces = _pieces(block)
    if not pieces:
        return SignatureFacts()
    name_tokens = _name_tokens(sender_name)
    text = "\n".join(pieces)
    title: str | None = None
    title_confidence = 0.0
    company: str | None = None
    company_confidence = 0.0
    for piece in pieces:
        piece = _LABEL.sub("", piece)
        if name_tokens and "," in piece and _is_name(piece.split(",", 1)[0], name_tokens):
            piece = piece.split(",", 1)[1].strip()  # "Jane Doe, CTO"
        elif name_tokens and _is_name(piece, name_tokens):
            continue
        if _PHONE_LABEL.match(piece) and sum(c.isdigit() for c in piece) >= 6:
            continue
        if title is None and _title_candidate(piece):
            title, written = _split_title(piece, domain, organization)
            title_confidence = 0.9 if _ROLE_ACRONYM.search(title) or _ROLE.search(title) else 0.6
            if written and company is None:
                company = written
                company_confidence = 0.9 if matches_domain(written, domain) else 0.6
            continue
        if company is None and _is_company(clean_company(piece), domain, organization):
            company = clean_company(piece)
            company_confidence = 0.9 if matches_domain(company, domain) else 0.6
    profiles, sites = find_links(text)
    own = next((s for s in sites if registrable_domain(s.split("//", 1)[1]) == registrable_domain(domain)), None)
    return SignatureFacts(
        job_title=_tidy_title(title) if title else None,
        title_confidence=title_confidence,
        phones=tuple(find_phones(text, region)),
        company=company,
        company_confidence=company_confidence,
        links=tuple(sites + profiles),
        website=own,
    )


def _tidy_title(title: str) -> str | None:
    title = " ".join(title.split()).strip(" ,;:|-–—•/")
    return title or None


def signature_block(text: str, sender_name: str = "") -> tuple[str, bool]:
    """The sender's signature block in `text` and whether it was delimited (a sign-off or `-- `).

    Only the sender's own text counts: everything from the first quoted or forwarded header on
    is someone else's — unless the message opens with the quote (bottom-posting), when the
    sender's text is what follows the last quoted line. Without a recognised separator, the last
    paragraph is taken when it opens with a sign-off or the sender's own name.
    """
    head = text[:20_000].replace("\r\n", "\n")
    start = quote_start(head)
    newest = head[:start]
    if not newest.strip() and start < len(head):
        newest = _after_quote(head)
    # text.signature() without its second search for quoted history: `newest` has none.
    block = newest[_signature_start(newest) :].strip()
    if block:
        return block, True
    paragraphs = re.split(r"\n[ \t]*\n", newest.strip())
    if len(paragraphs) < 2:
        return "", False
    last = paragraphs[-1].strip()
    lines = last.splitlines()
    if not 2 <= len(lines) <= _MAX_LINES:
        return "", False
    tokens = _name_tokens(sender_name)
    first = _SEPARATORS.split(lines[0])[0].split(",")[0]
    if (tokens and _is_name(first, tokens)) or (_SIGN_OFF.match(lines[0]) and len(lines[0]) < 40):
        return last, False
    return "", False


def _after_quote(text: str) -> str:
    """The text after the last `>` line: the sender's own when they wrote below the quote."""
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.startswith(">")), default=-1)
    return "\n".join(lines[last + 1 :])


# --- vCards ------------------------------------------------------------------------------


def parse_vcards(data: bytes, region: str = "US") -> list[Card]:
    """The cards in a `.vcf` attachment (vCard 2.1, 3.0 or 4.0), via `vobject`; [] for bad data."""
    import vobject  # imported here: only mail with a vCard pays for it

    text = data.decode("utf-8", errors="replace")
    cards: list[Card] = []
    try:
        components = list(vobject.readComponents(text, ignoreUnreadable=True))
    except Exception:  # vobject raises many kinds of errors for hostile input
        return []
    for component in components[:20]:
        contents = getattr(component, "contents", {})

        def values(key: str, contents: dict[str, list[object]] = contents) -> list[str]:
            out = []
            for line in contents.get(key, []):
                value = getattr(line, "value", "")
                if isinstance(value, list | tuple):
                    value = " ".join(str(v) for v in value if v)
                out.append(str(value).strip())
            return [v for v in out if v]

        emails = tuple(dict.fromkeys(e.lower().removeprefix("mailto:") for e in values("email") if "@" in e))
        phones = tuple(dict.fromkeys(p for p in (normalise_phone(t, region) for t in values("tel")) if p))
        urls = values("url")
        profiles = [p for p in (profile_link(u) for u in urls) if p]
        sites = [s for s in (website_link(u) for u in urls if not profile_link(u)) if s]
        orgs = values("org")
        names = values("fn")
        titles = values("title") or values("role")
        cards.append(
            Card(
                name=names[0] if names else None,
                emails=emails,
                job_title=titles[0][:_MAX_PIECE] if titles else None,
                company=clean_company(orgs[0]) if orgs else None,
                phones=phones,
                links=tuple(dict.fromkeys(sites + profiles)),
            )
        )
    return cards


def is_vcard(content_type: str, filename: str | None) -> bool:
    """True for `text/vcard`, `text/x-vcard`, `text/directory` or a `.vcf` file."""
    kind = content_type.lower()
    return kind in ("text/vcard", "text/x-vcard", "text/directory") or (filename or "").lower().endswith(".vcf")


# --- names -------------------------------------------------------------------------------


def is_proper_case(name: str) -> bool:
    """True for "Jane Doe", False for "jane doe" and "JANE DOE" (how clients garble names)."""
    letters = [c for c in name if c.isalpha()]
    return bool(letters) and not name.islower() and not name.isupper()


def _plain(name: str) -> str:
    """A name without case, spacing or accents: how clients differ in writing the same name."""
    decomposed = unicodedata.normalize("NFKD", " ".join(name.split()).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def choose_display_name(seen: Iterable[tuple[str, int, str]]) -> str | None:
    """The name to show from (display name, times used, last used ISO date) observations.

    The most frequent name (compared ignoring case, spacing and accents) wins, ties to the most
    recently used; within it, a proper-cased spelling ("Jane Doe" over "JANE DOE"), then one
    with its accents (clients drop them, never add them: "Jane Döe" over "Jane Doe"), then the
    most recent.
    """
    groups: dict[str, list[tuple[str, int, str]]] = {}
    for name, times, last in seen:
        clean = " ".join(name.split())
        if clean:
            groups.setdefault(_plain(clean), []).append((clean, times, last))
    if not groups:
        return None
    best = max(groups.values(), key=lambda g: (sum(t for _, t, _ in g), max(last for _, _, last in g)))
    best.sort(key=lambda o: (is_proper_case(o[0]), not o[0].isascii(), o[2]), reverse=True)
    return best[0][0]


# --- companies ---------------------------------------------------------------------------


def choose_company_name(domain: str, written: Sequence[tuple[str, float, int]]) -> str:
    """A company's name from (name as written, confidence, times) — signatures and Organization
    headers of its people — else from the domain. Only confident statements count: a name that
    matches the domain, or an Organization header."""
    candidates = [(c, n, name) for name, c, n in written if c >= 0.8 and name.strip()]
    if not candidates:
        return company_name(domain)
    candidates.sort(key=lambda t: (t[0], t[1]), reverse=True)
    return candidates[0][2].strip()


def clean_organization(value: str) -> str | None:
    """The Organization header as a company name, or None when it is empty or noise."""
    text = " ".join(value.split()).strip(" \"'")
    if not text or len(text) > _MAX_PIECE or "@" in text or _URL.search(text):
        return None
    return text


# --- one message -------------------------------------------------------------------------


def extract(
    *, text: str, html: str, sender_name: str, sender_address: str, organization: str,
    attachments: Iterable[tuple[str, str | None, bytes]] = (),
) -> Findings | None:
    """Everything enrichment reads in one message; None when there is nothing (the usual case).

    `attachments` are (content type, filename, bytes): only vCards are read.
    """
    org = clean_organization(organization) if organization else None
    facts: SignatureFacts | None = None
    if text:
        block, _ = signature_block(text, sender_name)
        if block:
            facts = parse_signature(block, sender_name=sender_name, sender_address=sender_address,
                                    organization=org or "")
        extra = html_signature_links(html)
        if extra:
            base = facts or SignatureFacts()
            links = tuple(dict.fromkeys(base.links + tuple(extra)))
            facts = SignatureFacts(base.job_title, base.title_confidence, base.phones, base.company,
                                   base.company_confidence, links, base.website)
        if facts is not None and facts.empty:
            facts = None
    region = region_for(sender_address.rpartition("@")[2])
    cards: list[Card] = []
    for content_type, filename, content in attachments:
        if content and is_vcard(content_type, filename) and len(content) < 256_000:
            cards.extend(parse_vcards(content, region))
    if facts is None and org is None and not cards:
        return None
    return Findings(facts, org, tuple(cards))


def findings_for(mail: ParsedMail) -> Findings | None:
    """`extract()` for a parsed message (called in `prepare`, before attachment bytes are dropped)."""
    sender = mail.sender
    if sender is None or not mail.has_body or is_automated_address(sender.address):
        return None
    if is_automated_message(mail.headers):
        return None
    return extract(
        text=mail.text, html=mail.html, sender_name=sender.name, sender_address=sender.address,
        organization=mail.header("organization"),
        attachments=[(a.content_type, a.filename, a.content) for a in mail.attachments],
    )
