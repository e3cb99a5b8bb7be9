"""Parsing hostile and broken mail: no crash; what can be read is read."""

from __future__ import annotations

import base64

import pytest

from relayproxy.graph.mail import UnparsableMail, parse, parse_headers
from relayproxy.graph.text import html_to_text, main_text, signature


def test_rfc2047_names_are_decoded_and_addresses_lowercased() -> None:
    mail = parse(b"From: =?iso-8859-1?q?J=F6rg_M=FCller?= <Joerg@Vandelay.DE>\r\nTo: a@example.com\r\n\r\nhi")
    assert mail.sender is not None
    assert (mail.sender.name, mail.sender.address) == ("Jörg Müller", "joerg@vandelay.de")


def test_missing_date_and_message_id_give_a_header_hash_key() -> None:
    raw = b"From: a@x.com\r\nTo: b@y.com\r\nSubject: s\r\n\r\nbody"
    mail = parse(raw)
    assert mail.date is None and mail.message_id is None
    assert mail.key.startswith("sha256:")
    assert parse_headers(raw).key == mail.key  # a header-only copy folds into the same message
    assert parse(raw.replace(b"\r\n", b"\n")).key == mail.key  # line endings do not matter


def test_message_id_is_the_key() -> None:
    assert parse(b"Message-ID:  <abc@x.com> \r\nFrom: a@x.com\r\n\r\n").key == "mid:abc@x.com"


def test_invalid_base64_falls_back_and_keeps_the_text() -> None:
    raw = (
        b"From: a@x.com\r\nTo: b@y.com\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nreadable\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64@@@\r\n--b--\r\n"
    )
    mail = parse(raw)
    assert "readable" in mail.text
    assert mail.sender is not None and mail.sender.address == "a@x.com"


def test_undecodable_charset_and_8bit_headers_do_not_crash() -> None:
    raw = (
        b"From: \xff\xfe Bad <bad@x.com>\r\nSubject: caf\xe9 \xe2\x98\x95\r\nTo: b@y.com\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\ncaf\xe9"
    )
    mail = parse(raw)
    assert mail.sender is not None and mail.sender.address == "bad@x.com"
    assert "caf" in mail.subject
    assert "caf" in mail.text


def test_malformed_mime_without_closing_boundary() -> None:
    raw = (b"From: a@x.com\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Type: text/plain\r\n\r\nhalf")
    assert "half" in parse(raw).text


def test_not_mail_at_all_is_unparsable() -> None:
    with pytest.raises(UnparsableMail):
        parse(b"this is not an email message\nat all")


def test_a_large_message_is_parsed() -> None:
    payload = base64.encodebytes(b"\0" * (50 * 1024 * 1024))
    raw = (
        b"From: a@x.com\r\nTo: b@y.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + payload + b"\r\n--b--\r\n"
    )
    mail = parse(raw)
    assert [a.size for a in mail.attachments] == [50 * 1024 * 1024]
    assert "see attached" in mail.text


def test_html_only_mail_becomes_text() -> None:
    raw = b"From: a@x.com\r\nContent-Type: text/html\r\n\r\n<p>Hello&nbsp;<b>world</b></p><script>x()</script>"
    mail = parse(raw)
    assert mail.text == "Hello world"
    assert html_to_text("<div>a</div><div>b</div>") == "a\nb"


@pytest.mark.parametrize(
    ("text", "main", "sig"),
    [
        ("Thanks, fine.\n\nBest,\nJane\n\nOn Mon, Nov 2, 2026 at 10:00 AM Bob <b@x.com> wrote:\n> old\n",
         "Thanks, fine.", "Best,\nJane"),
        ("Passt.\n\nViele Grüße\nJörg\n\nAm 02.11.2026 um 10:00 schrieb Bob <b@x.com>:\n> alt\n",
         "Passt.", "Viele Grüße\nJörg"),
        ("Sure.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\nTo: Jane\nSubject: x\n\nold", "Sure.", ""),
        ("Yes.\n-- \nJane Doe\nCTO", "Yes.", "-- \nJane Doe\nCTO"),
        ("Just text, no quote and no signature.", "Just text, no quote and no signature.", ""),
    ],
)
def test_main_text_removes_quotes_and_signature(text: str, main: str, sig: str) -> None:
    assert main_text(text) == main
    assert signature(text) == sig
