"""Who is signing in: the login named by a client's SASL exchange, read without judging it.

Theory of operation: the proxy never checks credentials; it replays the client's AUTH exchange
line by line to the upstream server, which decides (RFC 4954). On the side it reads the first
response the client sends (the initial response of `AUTH MECH <ir>`, else the answer to the
first 334 challenge), because for every mechanism it relays that response names the login:

- PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` — the authcid (the authzid if empty).
- LOGIN (draft-murchison-sasl-login): the base64 user name.
- XOAUTH2 (Google's): ``user=<login> ^A auth=Bearer <token> ^A ^A``.
- OAUTHBEARER (RFC 7628): a GS2 header ``n,a=<login>,`` then ``^A``-separated key=value pairs;
  the ``a=`` authzid, else a ``user=`` pair where a provider sends one.

Nothing here logs or keeps a password or token; only the login leaves this module.
"""

from __future__ import annotations

import binascii
from base64 import b64decode

# The mechanisms the proxy relays: each names its login in the first client response.
MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")


def identity(mechanism: str, response: str) -> str | None:
    """The login named by `response`, the client's first (base64) SASL response, or None."""
    if response in ("", "=", "*"):  # RFC 4954 §4: "=" is an empty initial response
        return None
    try:
        data = b64decode(response.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    text = data.decode("utf-8", errors="replace")
    mechanism = mechanism.upper()
    if mechanism == "PLAIN":
        parts = text.split("\0")
        if len(parts) != 3:
            return None
        return _clean(parts[1] or parts[0])
    if mechanism == "LOGIN":
        return _clean(text)
    if mechanism in ("XOAUTH2", "OAUTHBEARER"):
        return _oauth_login(text)
    return None


def _oauth_login(text: str) -> str | None:
    header, _, rest = text.partition("\x01")
    pairs = dict(item.partition("=")[::2] for item in rest.split("\x01") if "=" in item)
    if "user" in pairs:
        return _clean(pairs["user"])
    if header.startswith("user="):  # XOAUTH2: no GS2 header, the first pair is user=
        return _clean(header[5:])
    for field in header.split(",")[1:]:  # OAUTHBEARER GS2 header: n,a=login,
        if field.startswith("a="):
            # RFC 5801 §4: "=2C" and "=3D" escape "," and "=" in the authzid.
            return _clean(field[2:].replace("=2C", ",").replace("=3D", "="))
    return None


def _clean(login: str) -> str | None:
    login = login.strip()
    return login if login and "\0" not in login else None
