"""Who is signing in: the login a client's SASL exchange names, read without judging it.

Theory of operation: neither proxy checks credentials; each replays the client's exchange to the
upstream server, which decides (SMTP: RFC 4954; IMAP: RFC 9051 §6.2.2). On the side, the proxy
reads the client's first response (the initial response on the command line, else the answer
to the first challenge): for every mechanism in `MECHANISMS` that response names the login.

- PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd``. The authzid, when given, is the identity
  the client acts as (a Dovecot master user reading someone's mailbox, a delegate sending as
  them): the mail is that identity's. Else the authcid.
- LOGIN (draft-murchison-sasl-login): the base64 user name.
- XOAUTH2 (Google's): ``user=<login> ^A auth=Bearer <token> ^A ^A``.
- OAUTHBEARER (RFC 7628): a GS2 header ``n,a=<login>,`` then ``^A``-separated key=value pairs;
  the ``a=`` authzid, else a ``user=`` pair where a provider sends one.
- CRAM-MD5 (RFC 2195): the answer to the server's challenge, ``<login> SP <hex digest>``.
- SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802 §5.1, RFC 7677): the client-first message, a GS2 header
  with an optional ``a=`` authzid, then ``n=<login>,r=<nonce>``.

The SCRAM ``-PLUS`` variants bind the exchange to the client's TLS channel (RFC 5929), which ends
at the proxy and so can never match the server's: they are not relayed (and the IMAP proxy
removes them from the capabilities it passes on). Nothing here logs or keeps a password, digest
or token; only the login leaves this module.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode

MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")

_CRAM_DIGEST = re.compile(r" [0-9a-fA-F]{32}\Z")


def identity(mechanism: str, response: bytes | str) -> str | None:
    """The login named by `response`, the client's first (base64) SASL response, or None."""
    raw = response.encode("ascii", "replace") if isinstance(response, str) else response
    raw = raw.strip()
    if raw in (b"", b"=", b"*"):  # "=": an empty initial response; "*": the client cancelled
        return None
    try:
        data = b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    text = data.decode("utf-8", errors="replace")
    mechanism = mechanism.upper()
    if mechanism == "PLAIN":
        parts = text.split("\0")
        return _clean(parts[0] or parts[1]) if len(parts) == 3 else None
    if mechanism == "LOGIN":
        return _clean(text)
    if mechanism in ("XOAUTH2", "OAUTHBEARER"):
        return _oauth_login(text)
    if mechanism == "CRAM-MD5":
        return _clean(text[: -33]) if _CRAM_DIGEST.search(text) else None
    if mechanism in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        return _scram_login(text)
    return None


def _oauth_login(text: str) -> str | None:
    header, _, rest = text.partition("\x01")
    pairs = dict(item.partition("=")[::2] for item in rest.split("\x01") if "=" in item)
    if "user" in pairs:
        return _clean(pairs["user"])
    if header.startswith("user="):  # XOAUTH2: no GS2 header, the first pair is user=
        return _clean(header[5:])
    return _gs2_authzid(header)


def _scram_login(text: str) -> str | None:
    # gs2-cbind-flag "," [authzid] "," client-first-bare; the bare part is n=<login>,r=<nonce>
    flag, _, rest = text.partition(",")
    if flag not in ("n", "y"):  # "p=...": channel binding, which cannot pass a proxy
        return None
    authzid, _, bare = rest.partition(",")
    if authzid:
        return _gs2_authzid("n," + authzid)
    for field in bare.split(","):
        if field.startswith("n="):
            return _clean(_unescape(field[2:]))
    return None


def _gs2_authzid(header: str) -> str | None:
    for field in header.split(",")[1:]:
        if field.startswith("a="):
            return _clean(_unescape(field[2:]))
    return None


def _unescape(name: str) -> str:
    # RFC 5801 §4 / RFC 5802 §5.1: "=2C" and "=3D" stand for "," and "=" in a saslname.
    return name.replace("=2C", ",").replace("=3D", "=")


def _clean(login: str) -> str | None:
    login = login.strip()
    return login if login and "\0" not in login else None
