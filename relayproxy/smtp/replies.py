"""SMTP replies: the upstream server's, relayed verbatim, and the few the proxy speaks itself.

Theory of operation: the proxy's contract with the client is that every reply to MAIL, RCPT,
DATA, AUTH and friends is the upstream server's own code and text. aiosmtplib hands a reply
over as a code and its text lines joined by "\\n" (the "250-" prefixes stripped); `Reply`
keeps exactly that and renders it back into RFC 5321 §4.2 lines, multi-line replies with
"code-" continuations. The proxy only speaks for itself when it has no upstream answer to
give: the server is unreachable or was lost (421/451, RFC 5321 §3.8), the proxy is shutting
down, or a client is not allowed to sign in yet. The EHLO reply is the one place where the
upstream's words are filtered: extensions the proxy cannot relay are dropped (`ehlo_reply`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One SMTP reply: a three-digit code and its text lines joined by newlines."""

    code: int
    text: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx (positive completion) reply."""
        return 200 <= self.code < 300

    def lines(self) -> list[str]:
        """The reply as RFC 5321 §4.2 lines, without CRLF ("250-first", "250 last")."""
        parts = self.text.split("\n") if self.text else [""]
        out = [f"{self.code}-{part}" for part in parts[:-1]]
        out.append(f"{self.code} {parts[-1]}".rstrip(" "))
        return out

    def render(self) -> bytes:
        """The reply as bytes on the wire, CRLF after every line."""
        # surrogateescape: upstream text that was not UTF-8 goes back out byte for byte.
        return "".join(line + "\r\n" for line in self.lines()).encode("utf-8", "surrogateescape")


# The proxy's own words, for when there is no upstream answer to relay.


def unreachable(upstream: str, reason: str) -> Reply:
    """421 greeting when the upstream server cannot be reached (RFC 5321 §3.1)."""
    return Reply(421, f"4.4.1 Cannot reach the mail server {upstream} ({reason}); try again later")


UPSTREAM_LOST = Reply(421, "4.4.2 Lost the connection to the mail server; try again later")
DATA_NOT_SENT = Reply(
    451, "4.4.2 Lost the connection to the mail server during DATA; the message was not sent"
)
DATA_UNCONFIRMED = Reply(
    451,
    "4.4.2 Lost the connection to the mail server before it confirmed the message; "
    "it may not have been sent, send it again",
)
SHUTTING_DOWN = Reply(421, "4.3.2 relayproxy is shutting down; try again later")
TOO_BIG = Reply(552, "5.3.4 Message size exceeds the mail server's fixed maximum message size")
CONTROL_CHARACTERS = Reply(501, "5.5.2 Control characters are not allowed in commands")
AUTH_NEEDS_TLS = Reply(530, "5.7.0 Must issue a STARTTLS command first")
AUTH_NEEDS_ENCRYPTION = Reply(
    538, "5.7.11 Encryption required for requested authentication mechanism"
)
AUTH_UNKNOWN_MECHANISM = Reply(504, "5.5.4 Unrecognized authentication type")
AUTH_ALREADY = Reply(503, "5.5.1 Already authenticated")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1 AUTH not permitted during a mail transaction")
AUTH_SYNTAX = Reply(501, "5.5.4 Syntax: AUTH mechanism [initial-response]")
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6 Authentication exchange line is too long")
STARTTLS_AFTER_AUTH = Reply(503, "5.5.1 STARTTLS is not permitted after AUTH")
BYE = Reply(221, "2.0.0 Bye")


# EHLO keywords the proxy relays unchanged: each only adds MAIL/RCPT parameters or reply
# detail, which pass through as they are. Everything else is dropped: STARTTLS and AUTH are the
# proxy's own to offer; CHUNKING/BINARYMIME need BDAT, which the proxy does not relay; others
# (XCLIENT, ETRN, BURL, VRFY-style commands...) name commands the proxy does not forward.
RELAYED_EXTENSIONS = frozenset(
    {
        "SIZE",
        "8BITMIME",
        "SMTPUTF8",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "PIPELINING",
        "DELIVERBY",
        "MT-PRIORITY",
        "FUTURERELEASE",
        "MTRK",
        "RRVS",
        "LIMITS",
    }
)


def extensions(ehlo: Reply) -> dict[str, str]:
    """The ESMTP keywords of an EHLO reply (upper case) and their parameters (RFC 5321 §4.1.1.1)."""
    found: dict[str, str] = {}
    for line in ehlo.text.split("\n")[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword and "=" not in keyword:  # "AUTH=LOGIN" is a pre-RFC 2554 duplicate
            found.setdefault(keyword.upper(), params.strip())
    return found


def ehlo_reply(upstream: Reply, *, starttls: bool, auth: list[str]) -> Reply:
    """The EHLO reply for the client: upstream's, less what the proxy cannot relay.

    `starttls` adds STARTTLS (the proxy's own TLS); `auth` lists the mechanisms to offer now.
    """
    lines = upstream.text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        keyword = line.strip().partition(" ")[0].upper()
        if keyword in RELAYED_EXTENSIONS:
            out.append(line.strip())
    if starttls:
        out.append("STARTTLS")
    if auth:
        out.append("AUTH " + " ".join(auth))
    return Reply(upstream.code, "\n".join(out))
