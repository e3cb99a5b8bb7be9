"""CSRF protection: one random token per session, required in every POST form.

The token lives in the signed session cookie and is rendered into each form as the hidden
field `csrf_token`; a POST whose field does not match is refused with 403. The session cookie
is SameSite=Lax as well, so this is the second line, not the only one.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request


def token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    value = request.session.get("csrf")
    if not isinstance(value, str) or not value:
        value = request.session["csrf"] = secrets.token_urlsafe(32)
    return value


def rotate(request: Request) -> None:
    """A fresh token (at sign-in, so a token seen before sign-in is worthless after)."""
    request.session["csrf"] = secrets.token_urlsafe(32)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, once its `csrf_token` matches the session's; 403 otherwise."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "The form has expired or did not come from this site; reload the page and try again.")
    return form
