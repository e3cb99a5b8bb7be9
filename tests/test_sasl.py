"""The login a SASL exchange names, for every mechanism the proxies relay."""

from __future__ import annotations

from base64 import b64encode

import pytest

from relayproxy.sasl import identity


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("mechanism", "response", "login"),
    [
        ("PLAIN", b64("\0alice@example.com\0secret"), "alice@example.com"),
        # A master user or delegate acting as alice: the mail is alice's.
        ("PLAIN", b64("alice@example.com\0master@example.com\0secret"), "alice@example.com"),
        ("plain", b64("\0Alice@Example.com\0secret"), "Alice@Example.com"),
        ("LOGIN", b64("alice@example.com"), "alice@example.com"),
        ("XOAUTH2", b64("user=alice@example.com\x01auth=Bearer " + "t" * 4000 + "\x01\x01"),
         "alice@example.com"),
        ("OAUTHBEARER", b64("n,a=alice@example.com,\x01host=x\x01auth=Bearer t\x01\x01"),
         "alice@example.com"),
        ("OAUTHBEARER", b64("n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer t\x01\x01"),
         "a,b=c@example.com"),
        ("OAUTHBEARER", b64("n,,\x01user=alice@example.com\x01auth=Bearer t\x01\x01"),
         "alice@example.com"),
        ("CRAM-MD5", b64("alice@example.com b913a602c7eda7a495b4e6e7334d3890"), "alice@example.com"),
        ("CRAM-MD5", b64("alice digest"), None),
        ("SCRAM-SHA-256", b64("n,,n=alice@example.com,r=rOprNGfwEbeRWgbNEkqO"), "alice@example.com"),
        ("SCRAM-SHA-1", b64("y,,n=a=2Cb@example.com,r=fyko+d2lbbFgONRv9qkxdawL"), "a,b@example.com"),
        ("SCRAM-SHA-256", b64("n,a=alice@example.com,n=master,r=abc"), "alice@example.com"),
        ("SCRAM-SHA-256", b64("p=tls-unique,,n=alice@example.com,r=abc"), None),
        ("PLAIN", "=", None),
        ("PLAIN", "*", None),
        ("PLAIN", "not base64!", None),
        ("PLAIN", b64("no separators"), None),
        ("GSSAPI", b64("opaque"), None),
    ],
)
def test_identity(mechanism: str, response: str, login: str | None) -> None:
    assert identity(mechanism, response) == login
    assert identity(mechanism, response.encode()) == login  # the IMAP parser hands over bytes
