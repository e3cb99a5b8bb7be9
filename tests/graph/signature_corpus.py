"""A corpus of messages with signatures in common shapes, and what enrichment should find.

Each case is one message from `sender`. `title` is the job title the *sender's own* signature
states (None when it states none); `quoted_title` is a title that appears in the message but
belongs to someone else (quoted or forwarded) and must never be taken. `phones` are the sender's
numbers in E.164; `company` the company as written; `links` links that must be found.
Used by tests/graph/test_enrichment_corpus.py and bench/enrichment_corpus.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    name: str
    sender: str  # "Display Name <address>"
    body: str
    title: str | None = None
    phones: tuple[str, ...] = ()
    company: str | None = None
    links: tuple[str, ...] = ()
    quoted_title: str | None = None
    html: str | None = None  # an HTML-only message when set (body ignored)
    organization: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


CASES: list[Case] = [
    Case(
        "plain lines",
        "Jane Doe <jane@globex.com>",
        "Hi Bob,\n\nSounds good, let's meet Tuesday.\n\nBest regards,\nJane Doe\nVP of Sales\nGlobex Corp\n"
        "+1 (415) 555-0132\nwww.globex.com\n",
        title="VP of Sales", phones=("+14155550132",), company="Globex Corp", links=("https://www.globex.com",),
    ),
    Case(
        "pipes",
        "Tom Baker <tom@initech.com>",
        "Thanks, will do.\n\n-- \nTom Baker | Senior Software Engineer | Initech\nT: +1 212 555 0199 | initech.com\n",
        title="Senior Software Engineer", phones=("+12125550199",), company="Initech",
        links=("https://initech.com",),
    ),
    Case(
        "name comma title",
        "Priya Raman <priya@hooli.com>",
        "Attached is the deck.\n\nCheers,\nPriya Raman, CTO\nHooli Inc.\nMobile: (650) 555-0144\n",
        title="CTO", phones=("+16505550144",), company="Hooli Inc.",
    ),
    Case(
        "title at company",
        "Marcus Lee <marcus@umbrella.io>",
        "Let me know.\n\nThanks,\nMarcus Lee\nHead of Partnerships at Umbrella\nhttps://www.linkedin.com/in/marcuslee\n",
        title="Head of Partnerships", company="Umbrella", links=("https://www.linkedin.com/in/marcuslee",),
    ),
    Case(
        "title comma company",
        "Ana Silva <ana@vandelay.com>",
        "See you then.\n\nBest,\nAna Silva\nDirector of Operations, Vandelay Industries\nM +1 312-555-0177\n",
        title="Director of Operations", phones=("+13125550177",), company="Vandelay Industries",
    ),
    Case(
        "no sign-off, name first",
        "Li Wei <li.wei@acme-robotics.com>",
        "Hi,\n\nThe parts shipped today.\n\nLi Wei\nSupply Chain Manager\nAcme Robotics\n+1 617 555 0101\n",
        title="Supply Chain Manager", phones=("+16175550101",), company="Acme Robotics",
    ),
    Case(
        "label title",
        "Sam Ortiz <sam@stark.com>",
        "Confirmed.\n\nRegards,\nSam Ortiz\nTitle: Procurement Specialist\nPhone: 415.555.0188\n",
        title="Procurement Specialist", phones=("+14155550188",),
    ),
    Case(
        "two phones, fax skipped",
        "Olivia Hart <olivia@wayne.com>",
        "Sure.\n\nKind regards,\nOlivia Hart\nAccount Executive\nWayne Enterprises\nOffice: +1 (202) 555-0123\n"
        "Cell: +1 (202) 555-0145\nFax: +1 (202) 555-0199\n",
        title="Account Executive", phones=("+12025550123", "+12025550145"), company="Wayne Enterprises",
    ),
    Case(
        "profiles",
        "Dev Patel <dev@piedpiper.com>",
        "Merged the PR.\n\n--\nDev Patel\nStaff Engineer, Pied Piper\ngithub.com/devpatel | twitter.com/devp\n",
        title="Staff Engineer", company="Pied Piper",
        links=("https://github.com/devpatel", "https://x.com/devp"),
    ),
    Case(
        "disclaimer",
        "Rachel Green <rachel@cyberdyne.com>",
        "Please find the contract attached.\n\nBest regards,\nRachel Green\nLegal Counsel\nCyberdyne Systems\n"
        "Tel +1 408 555 0111\n\nCONFIDENTIALITY NOTICE: This email and any attachments are for the exclusive and "
        "confidential use of the intended recipient. If you are not the intended recipient, call 800 555 0100.\n",
        title="Legal Counsel", phones=("+14085550111",), company="Cyberdyne Systems",
    ),
    Case(
        "disclaimer German register",
        "Karl Weber <k.weber@weber-maschinenbau.de>",
        "Hallo Herr Smith,\n\nanbei das Angebot.\n\nMit freundlichen Grüßen\nKarl Weber\nVertriebsleiter\n"
        "Weber Maschinenbau GmbH\nTel. 0711 123456-0\nSitz der Gesellschaft: Stuttgart, Amtsgericht HRB 12345\n",
        title="Vertriebsleiter", phones=("+497111234560",), company="Weber Maschinenbau GmbH",
    ),
    Case(
        "German Geschäftsführer",
        "Hans Müller <hans@mueller-bau.de>",
        "Hallo,\n\nDanke für die Rückmeldung.\n\nViele Grüße\nHans Müller\nGeschäftsführer\nMüller Bau GmbH\n"
        "Telefon: 030 1234567\nMobil: 0171 1234567\n",
        title="Geschäftsführer", phones=("+49301234567", "+491711234567"), company="Müller Bau GmbH",
    ),
    Case(
        "French",
        "Marie Dubois <marie.dubois@lumiere.fr>",
        "Bonjour,\n\nMerci pour votre retour.\n\nCordialement,\nMarie Dubois\nDirectrice commerciale\nLumière SAS\n"
        "Tél : 01 23 45 67 89\n",
        title="Directrice commerciale", phones=("+33123456789",), company="Lumière SAS",
    ),
    Case(
        "Spanish",
        "Carlos Ruiz <carlos@sol-energia.es>",
        "Hola,\n\nTe envío el presupuesto.\n\nUn saludo,\nCarlos Ruiz\nDirector Técnico\nSol Energía S.L.\n"
        "Tel: +34 912 345 678\n",
        title="Director Técnico", phones=("+34912345678",), company="Sol Energía S.L.",
    ),
    Case(
        "Italian",
        "Giulia Rossi <giulia.rossi@venezia-design.it>",
        "Ciao,\n\nva bene per giovedì.\n\nCordiali saluti\nGiulia Rossi\nResponsabile Marketing\n"
        "Venezia Design Srl\nTel. +39 06 1234 5678\n",
        title="Responsabile Marketing", phones=("+390612345678",), company="Venezia Design Srl",
    ),
    Case(
        "Dutch",
        "Pieter de Vries <pieter@tulp.nl>",
        "Hoi,\n\nPrima, tot dan.\n\nMet vriendelijke groet,\nPieter de Vries\nProjectmanager\nTulp B.V.\n"
        "T +31 20 123 4567\n",
        title="Projectmanager", phones=("+31201234567",), company="Tulp B.V.",
    ),
    Case(
        "Swedish",
        "Erik Lund <erik@nordvind.se>",
        "Hej,\n\nTack för mötet.\n\nMed vänliga hälsningar\nErik Lund\nProjektledare\nNordvind AB\n"
        "Tel: 08-123 456 78\n",
        title="Projektledare", phones=("+46812345678",), company="Nordvind AB",
    ),
    Case(
        "Portuguese",
        "João Costa <joao@atlantico.pt>",
        "Olá,\n\nSegue o relatório.\n\nAtenciosamente,\nJoão Costa\nEngenheiro de Software\nAtlântico Lda\n"
        "+351 21 123 4567\n",
        title="Engenheiro de Software", phones=("+351211234567",),
    ),
    Case(
        "Polish",
        "Anna Nowak <anna@wisla.pl>",
        "Dzień dobry,\n\nprzesyłam dokumenty.\n\nPozdrawiam\nAnna Nowak\nKierownik Projektu\nWisła sp. z o.o.\n"
        "tel. +48 22 123 45 67\n",
        title="Kierownik Projektu", phones=("+48221234567",), company="Wisła sp. z o.o.",
    ),
    Case(
        "UK national number from .co.uk",
        "George Smith <george@thames.co.uk>",
        "Cheers,\n\nGeorge\n\n-- \nGeorge Smith\nOperations Director\nThames Logistics Ltd\nM: 07911 123456\n",
        title="Operations Director", phones=("+447911123456",), company="Thames Logistics Ltd",
    ),
    Case(
        "html signature",
        "Nina Brooks <nina@soylent.com>",
        "",
        html=(
            "<div>Hi team,<br>Notes from today are below.</div><br>"
            "<div>Best regards,</div><table><tr><td><b>Nina Brooks</b><br>Chief Marketing Officer<br>Soylent"
            "<br><a href=\"tel:+13105550166\">+1 310 555 0166</a><br>"
            "<a href=\"https://www.linkedin.com/in/ninabrooks/\">LinkedIn</a> | "
            "<a href=\"https://soylent.com\">soylent.com</a></td></tr></table>"
        ),
        title="Chief Marketing Officer", phones=("+13105550166",), company="Soylent",
        links=("https://www.linkedin.com/in/ninabrooks",),
    ),
    Case(
        "html signature with quote below",
        "Omar Haddad <omar@oscorp.com>",
        "",
        html=(
            "<p>Agreed, go ahead.</p><p>Thanks,<br>Omar Haddad<br>Product Manager | Oscorp<br>"
            "<a href=\"https://github.com/omarh\">GitHub</a></p>"
            "<div class=\"gmail_quote\">On Mon, Jan 5, 2026 at 9:00 AM Peter Parker &lt;peter@dailybugle.com&gt; "
            "wrote:<blockquote>Can we ship?<br><br>Peter Parker<br>Staff Photographer<br>"
            "<a href=\"https://www.linkedin.com/in/peterparker\">LinkedIn</a></blockquote></div>"
        ),
        title="Product Manager", company="Oscorp", links=("https://github.com/omarh",),
        quoted_title="Staff Photographer",
    ),
    Case(
        "reply quoting another's signature, sender has none",
        "Bob Stone <bob@initrode.com>",
        "Yes, Thursday works.\n\nBob\n\nOn Tue, 6 Jan 2026 at 14:02, Jane Doe <jane@globex.com> wrote:\n"
        "> Can we meet Thursday?\n>\n> Best regards,\n> Jane Doe\n> VP of Sales\n> Globex Corp\n"
        "> +1 (415) 555-0132\n",
        title=None, quoted_title="VP of Sales",
    ),
    Case(
        "reply quoting another's signature, sender has one",
        "Bob Stone <bob@initrode.com>",
        "Yes, Thursday works.\n\nBest,\nBob Stone\nCFO, Initrode\n+1 646 555 0150\n\n"
        "On Tue, 6 Jan 2026 at 14:02, Jane Doe <jane@globex.com> wrote:\n"
        "> Can we meet Thursday?\n>\n> Best regards,\n> Jane Doe\n> VP of Sales\n> Globex Corp\n"
        "> +1 (415) 555-0132\n",
        title="CFO", phones=("+16465550150",), company="Initrode", quoted_title="VP of Sales",
    ),
    Case(
        "Outlook reply header",
        "Sara Kim <sara@massive.com>",
        "Approved.\n\nSara\n\n________________________________\nFrom: Victor Hugo <victor@lesmis.fr>\n"
        "Sent: Monday, January 5, 2026 10:00 AM\nTo: Sara Kim <sara@massive.com>\nSubject: Budget\n\n"
        "Please approve.\n\nVictor Hugo\nChief Financial Officer\nTel: +33 1 23 45 67 89\n",
        title=None, quoted_title="Chief Financial Officer",
    ),
    Case(
        "Outlook reply with own signature",
        "Sara Kim <sara@massive.com>",
        "Approved.\n\nKind regards,\nSara Kim\nHead of Finance\nMassive Dynamic\n+1 (617) 555-0190\n\n"
        "-----Original Message-----\nFrom: Victor Hugo <victor@lesmis.fr>\nSent: Monday, January 5, 2026\n"
        "Subject: Budget\n\nPlease approve.\n\nVictor Hugo\nChief Financial Officer\n",
        title="Head of Finance", phones=("+16175550190",), company="Massive Dynamic",
        quoted_title="Chief Financial Officer",
    ),
    Case(
        "forwarded, signature is the original author's",
        "Tim Cook <tim@blueapple.com>",
        "FYI, see below.\n\n---------- Forwarded message ---------\nFrom: Linda Park <linda@vendor.com>\n"
        "Date: Mon, Jan 5, 2026 at 9:00 AM\nSubject: Pricing\nTo: Tim Cook <tim@blueapple.com>\n\n"
        "Here is our pricing.\n\nBest regards,\nLinda Park\nRegional Sales Director\n+1 415 555 0177\n",
        title=None, quoted_title="Regional Sales Director",
    ),
    Case(
        "Apple forward",
        "Tim Cook <tim@blueapple.com>",
        "Worth a look.\n\nBegin forwarded message:\n\nFrom: Linda Park <linda@vendor.com>\nSubject: Pricing\n"
        "Date: 5 January 2026 at 09:00:00 GMT\nTo: Tim Cook <tim@blueapple.com>\n\nPricing attached.\n\n"
        "Linda Park\nRegional Sales Director\nVendor Inc.\n",
        title=None, quoted_title="Regional Sales Director",
    ),
    Case(
        "forward with own signature above",
        "Maya Gold <maya@goldfinch.com>",
        "Sharing this with you.\n\nThanks,\nMaya Gold\nChief Operating Officer\nGoldfinch\n\n"
        "---------- Forwarded message ---------\nFrom: Linda Park <linda@vendor.com>\nSubject: Pricing\n\n"
        "Pricing attached.\n\nLinda Park\nRegional Sales Director\n",
        title="Chief Operating Officer", company="Goldfinch", quoted_title="Regional Sales Director",
    ),
    Case(
        "German reply header",
        "Eva Braun <eva@lindenhof.de>",
        "Passt, danke!\n\nBeste Grüße\nEva Braun\nTeamleiterin Einkauf\nLindenhof GmbH\n\n"
        "Am 05.01.2026 um 10:00 schrieb Max Mustermann <max@example.org>:\n> Hallo Eva,\n> anbei.\n>\n"
        "> Max Mustermann\n> Geschäftsführer\n",
        title="Teamleiterin Einkauf", company="Lindenhof GmbH", quoted_title="Geschäftsführer",
    ),
    Case(
        "French reply header",
        "Luc Martin <luc@fromagerie.fr>",
        "D'accord.\n\nBien à vous,\nLuc Martin\nFondateur\n06 12 34 56 78\n\n"
        "Le lun. 5 janv. 2026 à 10:00, Claire Petit <claire@exemple.fr> a écrit :\n> Bonjour Luc,\n>\n"
        "> Claire Petit\n> Directrice financière\n",
        title="Fondateur", phones=("+33612345678",), quoted_title="Directrice financière",
    ),
    Case(
        "sent from phone only",
        "Zoe Adams <zoe@brightside.com>",
        "OK, see you there.\n\nSent from my iPhone\n",
        title=None,
    ),
    Case(
        "no signature",
        "Paul Young <paul@northwind.com>",
        "Can you resend the file? The link expired.\n",
        title=None,
    ),
    Case(
        "first name only sign-off, no title",
        "Ivy Chen <ivy@tailspin.com>",
        "Great, thank you!\n\nBest,\nIvy\n",
        title=None,
    ),
    Case(
        "dash separators",
        "Henry Ford <henry@fordmotor.com>",
        "Noted.\n\nRegards,\nHenry Ford • Founder & CEO • Ford Motor\n+1 313 555 0108 • fordmotor.com\n",
        title="Founder & CEO", phones=("+13135550108",), company="Ford Motor",
        links=("https://fordmotor.com",),
    ),
    Case(
        "title with department and region",
        "Grace Hopper <grace@navy-systems.com>",
        "Thanks for the update.\n\nBest regards,\nGrace Hopper\nVice President, Engineering EMEA\n"
        "Navy Systems\n+44 20 7946 0958\n",
        title="Vice President, Engineering EMEA", phones=("+442079460958",), company="Navy Systems",
    ),
    Case(
        "organization header",
        "Kevin Flynn <kevin@encom.com>",
        "Ping me when ready.\n\nThanks,\nKevin Flynn\nSystems Architect\n",
        title="Systems Architect", organization="ENCOM International",
        extra_headers={"Organization": "ENCOM International"},
    ),
    Case(
        "address lines in signature",
        "Laura Palmer <laura@twinpeaks-lumber.com>",
        "Invoice attached.\n\nKind regards,\nLaura Palmer\nOffice Manager\nTwin Peaks Lumber\n"
        "1200 Sawmill Road, Suite 4\nTwin Peaks, WA 98065\nPhone: (425) 555-0133\n",
        title="Office Manager", phones=("+14255550133",), company="Twin Peaks Lumber",
    ),
    Case(
        "bottom-posted reply",
        "Arthur Dent <arthur@heartofgold.co.uk>",
        "> Will you join the call?\n> \n> Ford Prefect\n> Field Researcher\n\nYes, I'll join.\n\n-- \n"
        "Arthur Dent\nBusiness Analyst\n",
        title="Business Analyst", quoted_title="Field Researcher",
    ),
    Case(
        "Japanese",
        "Yuki Tanaka <tanaka@sakura-tech.jp>",
        "田中です。\n\n承知しました。\n\n--\nYuki Tanaka\nSenior Consultant\nSakura Tech K.K.\nTel: 03-1234-5678\n",
        title="Senior Consultant", phones=("+81312345678",),
    ),
]


def raw_message(case: Case, index: int = 0) -> bytes:
    """The case as a whole RFC 5322 message (plain text, or HTML only when `case.html` is set)."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = case.sender
    message["To"] = "Alice Example <alice@example.com>"
    message["Subject"] = f"Corpus case {index}: {case.name}"
    message["Date"] = "Tue, 06 Jan 2026 10:00:00 +0000"
    message["Message-ID"] = f"<corpus-{index}@test>"
    for name, value in case.extra_headers.items():
        message[name] = value
    if case.html is not None:
        message.set_content(case.html, subtype="html")
    else:
        message.set_content(case.body)
    return message.as_bytes()


@dataclass
class Score:
    """How enrichment did on the corpus."""

    stating: int = 0  # senders whose own signature states a title
    titles_right: int = 0
    titles_wrong: list[str] = field(default_factory=list)
    quoted_taken: list[str] = field(default_factory=list)  # a title taken from someone else's text
    phones_expected: int = 0
    phones_right: int = 0
    phones_not_e164: list[str] = field(default_factory=list)
    phone_misses: list[str] = field(default_factory=list)

    @property
    def title_rate(self) -> float:
        return self.titles_right / self.stating if self.stating else 1.0

    @property
    def phone_rate(self) -> float:
        return self.phones_right / self.phones_expected if self.phones_expected else 1.0

    def lines(self) -> list[str]:
        return [
            f"corpus: {len(CASES)} messages, {self.stating} senders whose signature states a job title",
            f"job title right: {self.titles_right}/{self.stating} = {self.title_rate:.1%}",
            f"titles taken from quoted or forwarded text: {len(self.quoted_taken)}",
            f"phones found as expected (E.164): {self.phones_right}/{self.phones_expected} = {self.phone_rate:.1%};"
            f" not E.164: {len(self.phones_not_e164)}",
            *(f"  wrong title: {w}" for w in self.titles_wrong),
            *(f"  phone miss: {m}" for m in self.phone_misses),
        ]


def score() -> Score:
    """Run every case through `prepare` (what ingest does) and compare with what is expected."""
    import re

    from relayproxy.graph.ingest import prepare

    result = Score()
    e164 = re.compile(r"^\+[1-9]\d{6,14}$")
    for index, case in enumerate(CASES):
        mail = prepare(raw_message(case, index), None)
        facts = mail.enrichment.signature if mail.enrichment else None
        title = facts.job_title if facts else None
        phones = facts.phones if facts else ()
        if case.title is not None:
            result.stating += 1
            if title == case.title:
                result.titles_right += 1
            else:
                result.titles_wrong.append(f"{case.name}: expected {case.title!r}, got {title!r}")
        elif title is not None:
            result.titles_wrong.append(f"{case.name}: expected none, got {title!r}")
        if case.quoted_title is not None and title == case.quoted_title:
            result.quoted_taken.append(case.name)
        result.phones_expected += len(case.phones)
        result.phones_right += len(set(phones) & set(case.phones))
        result.phones_not_e164.extend(p for p in phones if not e164.match(p))
        if set(phones) != set(case.phones):
            result.phone_misses.append(f"{case.name}: expected {list(case.phones)}, got {list(phones)}")
    return result
