"""A small mixed mailbox with known answers, shared by the graph and CLI tests."""

from __future__ import annotations

TEAM_TOML = """
[storage]
database = "{tmp}/relayproxy.db"
blobs = "{tmp}/blobs"

[team]
domains = ["example.com"]

[[team.members]]
login = "alice@example.com"
name = "Alice Example"
addresses = ["alice@example.com", "a.example@example.com"]
sharing = "full"

[[team.members]]
login = "bob@example.com"
name = "Bob Builder"
addresses = ["bob@example.com"]
"""

MESSAGES: list[bytes] = [
    # 1. Alice writes to Jane, Cc John (a subdomain of the same company), Bcc Initech's CEO.
    b"""From: "Alice Example" <alice@example.com>
To: "Jane Doe" <jane@globex.com>
Cc: john@eu.globex.com
Bcc: ceo@initech.co.uk
Subject: Proposal
Date: Sat, 03 Jan 2026 10:00:00 +0000
Message-ID: <m1@example.com>

Hi Jane, here is the proposal.
""",
    # 2. Jane answers (an RFC 2047 name; a +0100 date).
    b"""From: =?utf-8?q?Jane_D=C3=B6e?= <Jane@Globex.com>
To: Alice Example <alice@example.com>
Subject: Re: Proposal
Date: Mon, 05 Jan 2026 09:30:00 +0100
Message-ID: <m2@globex.com>
In-Reply-To: <m1@example.com>

Thanks Alice, looks good.

Best,
Jane

On Sat, 3 Jan 2026 Alice Example <alice@example.com> wrote:
> Hi Jane, here is the proposal.
""",
    # 3. A newsletter: bulk mail makes no people.
    b"""From: Globex News <news@globex.com>
To: alice@example.com
Subject: Our newsletter
Date: Tue, 06 Jan 2026 10:00:00 +0000
Message-ID: <n1@globex.com>
List-Unsubscribe: <mailto:unsubscribe@globex.com>

News.
""",
    # 4. A no-reply sender.
    b"""From: Initech <noreply@initech.co.uk>
To: alice@example.com
Subject: Your invoice
Date: Tue, 06 Jan 2026 11:00:00 +0000
Message-ID: <n2@initech.co.uk>

Invoice attached.
""",
    # 5. A friend on free mail: a person, no company.
    b"""From: Pat Friend <friend@gmail.com>
To: alice@example.com
Subject: Lunch?
Date: Wed, 07 Jan 2026 12:00:00 +0000
Message-ID: <f1@gmail.com>

Lunch on Friday?
""",
    # 6. Alice, from her second address, to Bob (a teammate) and Sam.
    b"""From: Alice <a.example@example.com>
To: bob@example.com, "Smith, Sam" <sam@hooli.com>
Subject: Intro
Date: Thu, 08 Jan 2026 09:00:00 +0000
Message-ID: <m6@example.com>

Sam, meet Bob.
""",
    # 7. Jane's answer again: the same Message-ID is one message.
    b"""From: =?utf-8?q?Jane_D=C3=B6e?= <jane@globex.com>
To: Alice Example <alice@example.com>
Subject: Re: Proposal
Date: Mon, 05 Jan 2026 09:30:00 +0100
Message-ID: <m2@globex.com>

Thanks Alice, looks good.
""",
    # 8. No Date and no Message-ID: dated by the mbox From line.
    b"""From: zed@umbrella.io
To: alice@example.com
Subject: hello

no date here
""",
    # 9. A bounce.
    b"""Return-Path: <>
From: Mail Delivery System <mailer-daemon@mx.globex.com>
To: alice@example.com
Subject: Undelivered Mail Returned to Sender
Date: Fri, 09 Jan 2026 10:00:00 +0000
Message-ID: <b1@mx.globex.com>

Delivery failed.
""",
    # 10. An auto-reply from Jane does not count.
    b"""From: Jane Doe <jane@globex.com>
To: alice@example.com
Subject: Out of office
Auto-Submitted: auto-replied
Date: Sat, 10 Jan 2026 10:00:00 +0000
Message-ID: <ooo@globex.com>

I am away.
""",
]

FROM_LINE_DATE = "Sun Jan 11 15:16:17 2026"


def mbox() -> bytes:
    """The messages as one mbox, plus one block that is not mail at all."""
    out = b""
    for raw in MESSAGES:
        out += f"From sender@example.net {FROM_LINE_DATE}\n".encode() + raw + b"\n"
    out += b"From sender@example.net Sun Jan 11 15:16:17 2026\nthis is not an email message\n\n"
    return out


EXPECTED_PEOPLE = {
    "jane@globex.com": {
        "name": "Jane Döe", "company": "globex.com", "first_contacted": "2026-01-03T10:00:00Z",
        "last_contacted": "2026-01-05T08:30:00Z", "messages_sent": 1, "messages_received": 1,
    },
    "john@eu.globex.com": {
        "name": "John", "company": "globex.com", "first_contacted": "2026-01-03T10:00:00Z",
        "last_contacted": "2026-01-03T10:00:00Z", "messages_sent": 1, "messages_received": 0,
    },
    "ceo@initech.co.uk": {
        "name": "Ceo", "company": "initech.co.uk", "first_contacted": "2026-01-03T10:00:00Z",
        "last_contacted": "2026-01-03T10:00:00Z", "messages_sent": 1, "messages_received": 0,
    },
    "friend@gmail.com": {
        "name": "Pat Friend", "company": None, "first_contacted": "2026-01-07T12:00:00Z",
        "last_contacted": "2026-01-07T12:00:00Z", "messages_sent": 0, "messages_received": 1,
    },
    "sam@hooli.com": {
        "name": "Sam Smith", "company": "hooli.com", "first_contacted": "2026-01-08T09:00:00Z",
        "last_contacted": "2026-01-08T09:00:00Z", "messages_sent": 1, "messages_received": 0,
    },
    "zed@umbrella.io": {
        "name": "Zed", "company": "umbrella.io", "first_contacted": "2026-01-11T15:16:17Z",
        "last_contacted": "2026-01-11T15:16:17Z", "messages_sent": 0, "messages_received": 1,
    },
}
