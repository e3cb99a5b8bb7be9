"""Transcript tests for the sans-IO parser: no sockets.

Every transcript runs three ways (as h11's tests do): whole, one byte at a time, and at random
split points chosen by hypothesis; the forwarded bytes and the events must not depend on how the
stream was cut.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relayproxy.imap.parser import (
    Appended,
    CapabilityListed,
    CompressionStarted,
    Connection,
    Event,
    LoggedIn,
    MailboxSelected,
    MessageFetched,
)
from tests.imap.messages import message

Step = tuple[str, bytes]  # ("C" client→server | "S" server→client, bytes)
Splitter = Callable[[bytes], Iterator[bytes]]

DOVECOT = [
    (d, s.encode("latin-1"))
    for d, s in json.loads((Path(__file__).parent / "transcripts" / "dovecot.json").read_text())
]


@dataclass
class Run:
    to_server: bytes = b""
    to_client: bytes = b""
    events: list[Event] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    tls_requested: bool = False

    def summary(self) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        for e in self.events:
            if isinstance(e, MessageFetched):
                out.append(("fetched", e.kind, e.seq, e.uid, e.mailbox, e.payload.read()))
            elif isinstance(e, Appended):
                out.append(("appended", e.mailbox, e.drafts, e.payload.read()))
            else:
                out.append((e,))
        return out


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def run(steps: list[Step], split: Splitter = whole, **options: object) -> Run:
    conn = Connection(**options)  # type: ignore[arg-type]
    result = Run()
    for direction, data in steps:
        for chunk in split(data):
            if direction == "C":
                result.to_server += conn.receive_client(chunk)
                result.events += conn.client_events()
                result.replies += conn.take_replies()
                result.tls_requested |= conn.tls_requested
            else:
                result.to_client += conn.receive_server(chunk)
                result.events += conn.server_events()
    # What an incomplete last line held back is part of the stream too.
    held_client, held_server = conn.held()
    result.to_server += held_client
    result.to_client += held_server
    return result


def joined(steps: list[Step], direction: str) -> bytes:
    return b"".join(d for w, d in steps if w == direction)


def check_all_splits(steps: list[Step], **options: object) -> Run:
    """Run whole and byte by byte; both must agree. Returns the whole run."""
    a = run(steps, whole, **options)
    b = run(steps, bytewise, **options)
    assert (b.to_server, b.to_client, b.replies) == (a.to_server, a.to_client, a.replies)
    assert b.summary() == a.summary()
    return a


def splits_strategy() -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=60)


def random_splitter(sizes: list[int]) -> Splitter:
    def split(data: bytes) -> Iterator[bytes]:
        pos, i = 0, 0
        while pos < len(data):
            size = sizes[i % len(sizes)]
            yield data[pos : pos + size]
            pos += size
            i += 1

    return split


# ---------------------------------------------------------------- the real Dovecot transcript


def test_dovecot_transcript_relays_every_byte_but_capabilities() -> None:
    result = check_all_splits(DOVECOT)
    assert result.to_server == joined(DOVECOT, "C")
    expected = joined(DOVECOT, "S").replace(b" STARTTLS", b"").replace(b" COMPRESS=DEFLATE", b"")
    assert result.to_client == expected


def test_dovecot_transcript_events() -> None:
    events = run(DOVECOT).events
    logins = [e.login for e in events if isinstance(e, LoggedIn)]
    assert logins == ["alice@example.com"] * 3
    selected = [e for e in events if isinstance(e, MailboxSelected)]
    assert {e.mailbox for e in selected} == {"INBOX"} and all(e.uidvalidity for e in selected)
    fetched = [(e.kind, e.uid) for e in events if isinstance(e, MessageFetched)]
    assert fetched == [
        ("full", 1),  # BODY.PEEK[] answered as BODY[]
        ("headers", 1), ("headers", 2), ("headers", 3),  # UID FETCH HEADER.FIELDS
        ("headers", None),  # BODY[HEADER] beside ENVELOPE; the <0.100> partial is not a message
        ("full", None),  # RFC822
        ("headers", None), ("headers", None), ("headers", None),  # RFC822.HEADER, not BINARY[1]
        ("headers", 1), ("headers", 2), ("headers", 3),  # BODY[HEADER] beside BODY[TEXT]
    ]
    full = [e for e in events if isinstance(e, MessageFetched) and e.kind == "full"]
    assert full[0].payload.read() == message(0, size=1500)
    assert full[1].payload.read() == message(2, size=1500)
    appended = [(e.mailbox, e.drafts) for e in events if isinstance(e, Appended)]
    assert appended == [("Sent", False), ("Drafts", True), ("Sent", False)]
    assert [e.payload.read() for e in events if isinstance(e, Appended)][0] == message(10, size=800)
    caps = [e for e in events if isinstance(e, CapabilityListed)]
    assert any("COMPRESS=DEFLATE" in e.capabilities for e in caps)  # as the server said it


@settings(max_examples=60, deadline=None)
@given(sizes=splits_strategy())
def test_dovecot_transcript_at_random_splits(sizes: list[int]) -> None:
    a = run(DOVECOT)
    b = run(DOVECOT, random_splitter(sizes))
    assert (b.to_server, b.to_client) == (a.to_server, a.to_client)
    assert b.summary() == a.summary()


# ---------------------------------------------------------------- synthetic transcripts

MSG = message(1, size=600, attachment=False)
HDR = MSG.split(b"\r\n\r\n")[0] + b"\r\n\r\n"

FETCH_FORMS: list[Step] = [
    ("C", b"a1 LOGIN alice \"pw\"\r\n"),
    ("S", b"a1 OK [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE IDLE] Logged in\r\n"),
    ("C", b"a2 SELECT \"INBOX\"\r\n"),
    ("S", b"* OK [UIDVALIDITY 777] UIDs valid\r\n* 3 EXISTS\r\n"
          b"a2 OK [READ-WRITE] Select completed\r\n"),
    ("C", b"a3 UID FETCH 1:* (BODY.PEEK[HEADER] BODY.PEEK[] FLAGS)\r\n"),
    # several literals in one response; the header first, then the whole message
    ("S", b"* 1 FETCH (UID 5 BODY[HEADER] {%d}\r\n%s BODY[] {%d}\r\n%s FLAGS (\\Seen))\r\n"
          % (len(HDR), HDR, len(MSG), MSG)),
    # a quoted body and a NIL one, and a literal of size zero
    ("S", b"* 2 FETCH (UID 6 BODY[] \"tiny\")\r\n* 3 FETCH (UID 7 BODY[] NIL)\r\n"
          b"* 3 FETCH (UID 7 BODY[HEADER] {0}\r\n)\r\n"),
    # a binary literal (RFC 3516) and a partial: neither is the raw message
    ("S", b"* 1 FETCH (UID 5 BINARY[] ~{4}\r\nab\x00c BODY[]<0> {3}\r\nabc)\r\n"),
    # a literal inside ENVELOPE (the subject) is not a body
    ("S", b"* 2 FETCH (UID 6 ENVELOPE (NIL {5}\r\nhello NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"),
    ("S", b"a3 OK Fetch completed\r\n"),
    ("C", b"a4 FETCH 1 RFC822.HEADER\r\n"),
    ("S", b"* 1 FETCH (RFC822.HEADER {%d}\r\n%s)\r\na4 OK done\r\n" % (len(HDR), HDR)),
]


def test_fetch_forms() -> None:
    result = check_all_splits(FETCH_FORMS)
    assert result.to_client == joined(FETCH_FORMS, "S").replace(b" COMPRESS=DEFLATE", b"")
    summary = [s for s in result.summary() if s[0] == "fetched"]
    assert summary == [
        ("fetched", "full", 1, 5, "INBOX", MSG),
        ("fetched", "full", 2, 6, "INBOX", b"tiny"),
        ("fetched", "headers", 3, 7, "INBOX", b""),
        ("fetched", "headers", 1, None, "INBOX", HDR),
    ]
    selected = [e for e in result.events if isinstance(e, MailboxSelected)]
    assert selected == [MailboxSelected("INBOX", 777, False)]


@settings(max_examples=40, deadline=None)
@given(sizes=splits_strategy())
def test_fetch_forms_at_random_splits(sizes: list[int]) -> None:
    a, b = run(FETCH_FORMS), run(FETCH_FORMS, random_splitter(sizes))
    assert (b.to_client, b.summary()) == (a.to_client, a.summary())


def test_literal_login_and_refused_synchronising_literal() -> None:
    steps: list[Step] = [
        ("C", b"t1 LOGIN {5}\r\n"),
        ("S", b"+ OK\r\n"),
        ("C", b"alice {6}\r\n"),
        ("S", b"+ OK\r\n"),
        ("C", b"secret\r\n"),
        ("S", b"t1 OK Logged in\r\n"),
        # the server refuses the literal: the client never sends its bytes
        ("C", b"t2 APPEND NoSuchBox {40}\r\n"),
        ("S", b"t2 NO [TRYCREATE] Mailbox doesn't exist\r\n"),
        ("C", b"t3 APPEND Sent {4}\r\n"),
        ("S", b"+ OK\r\n"),
        ("C", b"abcd\r\n"),
        ("S", b"t3 OK [APPENDUID 1 1] Append completed.\r\n"),
    ]
    result = check_all_splits(steps)
    assert result.to_server == joined(steps, "C")
    assert result.summary() == [(LoggedIn("alice"),), ("appended", "Sent", False, b"abcd")]


def test_multiappend_with_literal_plus_and_catenate_ignored() -> None:
    steps: list[Step] = [
        ("C", b"m1 APPEND Sent (\\Seen) {3+}\r\none "
              b"(\\Seen) \"1-Jan-2026 00:00:00 +0000\" {3+}\r\ntwo\r\n"
              b"m2 APPEND Sent CATENATE (URL \"/INBOX;UID=1\" TEXT {3+}\r\nxyz)\r\n"),
        ("S", b"m1 OK appended\r\nm2 OK appended\r\n"),
        ("C", b"m3 APPEND Drafts {2+}\r\nhi\r\n"),
        ("S", b"m3 OK appended\r\n"),
    ]
    result = check_all_splits(steps)
    assert result.summary() == [
        ("appended", "Sent", False, b"one"),
        ("appended", "Sent", False, b"two"),
        ("appended", "Drafts", True, b"hi"),
    ]


def test_drafts_known_by_special_use() -> None:
    steps: list[Step] = [
        ("C", b"l1 LIST \"\" *\r\n"),
        ("S", b"* LIST (\\HasNoChildren \\Drafts) \"/\" \"Entw&APw-rfe\"\r\nl1 OK done\r\n"),
        ("C", b"l2 APPEND \"Entw&APw-rfe\" {2+}\r\nhi\r\n"),
        ("S", b"l2 OK done\r\n"),
    ]
    assert run(steps).summary() == [("appended", "Entw&APw-rfe", True, b"hi")]


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


@pytest.mark.parametrize(
    ("steps", "login"),
    [
        ([("C", b"x AUTHENTICATE PLAIN " + _b64(b"\0bob@example.com\0pw") + b"\r\n"),
          ("S", b"x OK done\r\n")], "bob@example.com"),
        ([("C", b"x AUTHENTICATE PLAIN\r\n"), ("S", b"+ \r\n"),
          ("C", _b64(b"carol\0carol\0pw") + b"\r\n"), ("S", b"x OK done\r\n")], "carol"),
        ([("C", b"x AUTHENTICATE LOGIN\r\n"), ("S", b"+ VXNlcm5hbWU6\r\n"),
          ("C", _b64(b"dave") + b"\r\n"), ("S", b"+ UGFzc3dvcmQ6\r\n"),
          ("C", _b64(b"pw") + b"\r\n"), ("S", b"x OK done\r\n")], "dave"),
        ([("C", b"x AUTHENTICATE XOAUTH2 "
           + _b64(b"user=erin@x.org\x01auth=Bearer t\x01\x01") + b"\r\n"),
          ("S", b"x OK done\r\n")], "erin@x.org"),
        ([("C", b"x AUTHENTICATE CRAM-MD5\r\n"), ("S", b"+ PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2U+\r\n"),
          ("C", _b64(b"gina b913a602c7eda7a495b4e6e7334d3890") + b"\r\n"), ("S", b"x OK done\r\n")], "gina"),
        ([("C", b"x AUTHENTICATE SCRAM-SHA-256 " + _b64(b"n,,n=hank,r=rOprNGfw") + b"\r\n"),
          ("S", b"+ " + _b64(b"r=rOprNGfwEbeR,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") + b"\r\n"),
          ("C", _b64(b"c=biws,r=rOprNGfwEbeR,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") + b"\r\n"),
          ("S", b"+ " + _b64(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") + b"\r\n"),
          ("C", b"\r\n"), ("S", b"x OK done\r\n")], "hank"),
        ([("C", b"x AUTHENTICATE OAUTHBEARER " + _b64(b"n,a=f=2Cg@x.org,\x01auth=Bearer t\x01\x01")
           + b"\r\n"), ("S", b"x OK done\r\n")], "f,g@x.org"),
    ],
)
def test_authenticate_names_the_member(steps: list[Step], login: str) -> None:
    result = check_all_splits(steps)
    assert result.to_server == joined(steps, "C")
    assert [e.login for e in result.events if isinstance(e, LoggedIn)] == [login]


def test_only_the_first_sasl_response_can_name_the_member() -> None:
    steps: list[Step] = [
        ("C", b"x AUTHENTICATE LOGIN\r\n"), ("S", b"+ VXNlcm5hbWU6\r\n"),
        ("C", b"\r\n"), ("S", b"+ UGFzc3dvcmQ6\r\n"),  # an empty user name, then the password
        ("C", _b64(b"hunter2") + b"\r\n"), ("S", b"x OK Logged in\r\n"),  # a lenient server
    ]
    result = check_all_splits(steps)
    assert [e.login for e in result.events if isinstance(e, LoggedIn)] == [""]  # unknown; never "hunter2"


def test_idle_and_done() -> None:
    steps: list[Step] = [
        ("C", b"i1 IDLE\r\n"),
        ("S", b"+ idling\r\n"),
        ("S", b"* 4 EXISTS\r\n"),
        ("C", b"DONE\r\n"),
        ("S", b"i1 OK Idle completed.\r\n"),
        ("C", b"i2 NOOP\r\n"),
    ]
    conn = Connection()
    for d, data in steps[:3]:
        (conn.receive_client if d == "C" else conn.receive_server)(data)
    assert conn.quiescent  # IDLE alone does not count as work in flight
    result = check_all_splits(steps)
    assert result.to_client == joined(steps, "S") and result.to_server == joined(steps, "C")


def test_compress_accepted_is_an_event() -> None:
    steps: list[Step] = [("C", b"z COMPRESS DEFLATE\r\n"), ("S", b"z OK DEFLATE active\r\n")]
    assert run(steps).events == [CompressionStarted()]


# ---------------------------------------------------------------- capabilities and policy


def test_capabilities_reflect_the_proxy_tls() -> None:
    steps: list[Step] = [
        ("S", b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] ready\r\n"),
        ("C", b"c CAPABILITY\r\n"),
        ("S", b"* CAPABILITY IMAP4rev1 LITERAL+ COMPRESS=DEFLATE STARTTLS\r\nc OK done\r\n"),
    ]
    plain_remote = run(steps, tls_available=True, loopback=False).to_client
    assert plain_remote == (
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] ready\r\n"
        b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED LITERAL+\r\nc OK done\r\n"
    )
    on_tls = run(steps, client_tls=True, tls_available=True, loopback=False).to_client
    assert on_tls == (
        b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"
        b"* CAPABILITY IMAP4rev1 LITERAL+\r\nc OK done\r\n"
    )
    no_tls_loopback = run(steps, tls_available=False, loopback=True).to_client
    assert no_tls_loopback == on_tls


def test_channel_binding_mechanisms_are_not_offered_through_the_proxy() -> None:
    steps: list[Step] = [
        ("S", b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS] ready\r\n"),
    ]
    shown = run(steps, client_tls=True).to_client
    assert shown == b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=SCRAM-SHA-256] ready\r\n"


def test_starttls_is_answered_by_the_proxy_and_injection_discarded() -> None:
    conn = Connection(tls_available=True, loopback=False)
    assert conn.receive_client(b"s1 STARTTLS\r\ns2 LOGIN evil pw\r\n") == b""
    assert conn.take_replies() == [b"s1 OK Begin TLS negotiation now\r\n"]
    assert conn.tls_requested
    assert conn.receive_client(b"more plaintext\r\n") == b""  # before the handshake: dropped
    conn.tls_started()
    assert conn.receive_client(b"s3 LOGIN alice pw\r\n") == b"s3 LOGIN alice pw\r\n"
    assert conn.client_events() == []


def test_starttls_without_a_certificate_is_refused() -> None:
    conn = Connection(tls_available=False)
    assert conn.receive_client(b"s1 STARTTLS\r\ns2 NOOP\r\n") == b"s2 NOOP\r\n"
    assert conn.take_replies() == [b"s1 BAD STARTTLS is not offered by this proxy\r\n"]
    assert not conn.tls_requested


@pytest.mark.parametrize(
    ("command", "forwarded"),
    [
        (b"p1 LOGIN alice secret\r\np2 NOOP\r\n", b"p2 NOOP\r\n"),
        (b"p1 LOGIN {5}\r\n", b""),  # the client waits for `+`: answered at once
        (b"p1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\np2 NOOP\r\n", b"p2 NOOP\r\n"),
        (b"p1 AUTHENTICATE PLAIN AGFsaWNlAHB3\r\np2 NOOP\r\n", b"p2 NOOP\r\n"),
    ],
)
def test_plaintext_sign_in_from_afar_is_refused(command: bytes, forwarded: bytes) -> None:
    for split in (whole, bytewise):
        conn = Connection(tls_available=False, loopback=False)
        out = b"".join(conn.receive_client(chunk) for chunk in split(command))
        assert out == forwarded
        assert conn.take_replies() == [
            b"p1 NO [PRIVACYREQUIRED] Sign-in over plaintext is only accepted from this machine\r\n"
        ]


def test_large_literal_is_spilled_to_a_file() -> None:
    body = b"x" * 5000
    steps: list[Step] = [
        ("C", b"f FETCH 1 BODY[]\r\n"),
        ("S", b"* 1 FETCH (BODY[] {5000}\r\n" + body + b")\r\nf OK done\r\n"),
    ]
    events = run(steps, spill_threshold=1000).events
    assert len(events) == 1 and isinstance(events[0], MessageFetched)
    assert events[0].payload.spilled and events[0].payload.read() == body


def test_unreadable_fetch_raises_for_the_relay_to_fall_back() -> None:
    conn = Connection()
    data = b'* 1 FETCH (BODY[] "unterminated)\r\n'
    assert conn.receive_server(data) == data  # framing forwards before interpretation fails
    with pytest.raises(ValueError):
        conn.server_events()


ENVELOPE_ONLY: list[Step] = [
    ("C", b"a1 LOGIN alice \"pw\"\r\n"),
    ("S", b"a1 OK Logged in\r\n"),
    ("C", b"a2 SELECT INBOX\r\n"),
    ("S", b"* OK [UIDVALIDITY 9] UIDs valid\r\na2 OK [READ-WRITE] Select completed\r\n"),
    ("C", b"a3 UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)\r\n"),
    ("S", b'* 1 FETCH (UID 4 FLAGS (\\Seen) ENVELOPE ("Mon, 23 Nov 2026 10:00:00 +0000" "Pilot \\"go\\"" '
          b'(("Jane Doe" NIL "jane" "globex.com")) (("Jane Doe" NIL "jane" "globex.com")) NIL '
          b'((NIL NIL "alice" "example.com")("Team" NIL NIL NIL)("Sam" NIL "sam" "hooli.com")(NIL NIL NIL NIL)) '
          b'NIL NIL NIL "<kick@globex.com>") BODYSTRUCTURE ("TEXT" "PLAIN" NIL NIL NIL "7BIT" 5 1))\r\n'),
    # without a Message-ID an envelope could not be matched with its message later: not kept
    ("S", b'* 2 FETCH (UID 5 ENVELOPE (NIL "x" NIL NIL NIL NIL NIL NIL NIL NIL))\r\n'),
    ("S", b"a3 OK Fetch completed\r\n"),
]


def test_an_envelope_becomes_a_header_block() -> None:
    result = check_all_splits(ENVELOPE_ONLY)
    assert result.to_client == joined(ENVELOPE_ONLY, "S")
    fetched = [s for s in result.summary() if s[0] == "fetched"]
    assert fetched == [(
        "fetched", "headers", 1, 4, "INBOX",
        b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nSubject: Pilot \"go\"\r\n"
        b"From: \"Jane Doe\" <jane@globex.com>\r\nTo: alice@example.com, \"Sam\" <sam@hooli.com>\r\n"
        b"Message-ID: <kick@globex.com>\r\n\r\n",
    )]


@settings(max_examples=30, deadline=None)
@given(sizes=splits_strategy())
def test_an_envelope_at_random_splits(sizes: list[int]) -> None:
    a, b = run(ENVELOPE_ONLY), run(ENVELOPE_ONLY, random_splitter(sizes))
    assert (b.to_client, b.summary()) == (a.to_client, a.summary())
