"""A sans-IO reader of both directions of an IMAP connection: bytes in, events out, no sockets.

Theory of operation
-------------------
Each direction of IMAP is a sequence of CRLF-terminated lines into which literals are spliced:
a line ending in ``{n}`` (``{n+}``, ``~{n}``) is followed by exactly n raw bytes and then by the
rest of the same command or response (RFC 9051 §4.3, §4.3.1; RFC 7888 LITERAL+). The reader has
two layers per direction.

*Framing* (`Connection.receive_client`, `Connection.receive_server`) cuts the bytes into
complete lines and literal data, counting literal bytes arithmetically across any chunking
(`bytes.find` for the line end, a regex on the last bytes of a line for ``{n}``; never a loop
per byte). It returns the bytes to forward at once: the input unchanged, except

* capability lines from the server, rewritten by `capabilities.rewrite_line`;
* commands the proxy answers itself (STARTTLS; sign-ins refused in plaintext), withheld;
* the tail of an incomplete line, held until its line end arrives so that the two cases above
  can be recognised. Literal data is never held.

Framing queues what it cut (`_Line`, `_Chunk`) for the second layer.

*Interpretation* (`Connection.client_events`, `Connection.server_events`) runs after the relay
has forwarded the bytes. It tracks tags and commands, the signed-in login, the selected mailbox
and its UIDVALIDITY, and turns FETCH and APPEND literals into `Payload`s, returning events
(`LoggedIn`, `MailboxSelected`, `MessageFetched`, `Appended`, `CapabilityListed`...). It may
raise on input it does not understand; the relay then stops calling the reader and pipes the
connection's bytes blindly (see relay.py), so nothing here can corrupt the stream.

The two directions meet at synchronising literals: a client sending ``{n}`` waits for the
server's ``+`` before the n bytes (or gets a tagged refusal instead), so the server side tells
the client side which of the two happened (`_ClientFramer.continuation`, `.tagged`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relayproxy import sasl
from relayproxy.imap.capabilities import CapabilityPolicy, parse_capabilities, rewrite_line
from relayproxy.imap.literal import DEFAULT_SPILL_THRESHOLD, Payload

# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class CapabilityListed:
    """The server listed its capabilities (as it sent them, before the proxy's rewrite)."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class LoggedIn:
    """A LOGIN or AUTHENTICATE succeeded; `login` is the identity the client gave."""

    login: str


@dataclass(frozen=True)
class MailboxSelected:
    mailbox: str
    uidvalidity: int | None
    readonly: bool


@dataclass(frozen=True)
class MessageFetched:
    """A FETCH response carried a whole message (`kind` "full") or only its header ("headers")."""

    kind: str
    payload: Payload
    seq: int
    uid: int | None
    mailbox: str | None
    uidvalidity: int | None


@dataclass(frozen=True)
class Appended:
    """The server accepted an APPEND of `payload` to `mailbox` (one event per message)."""

    mailbox: str
    payload: Payload
    drafts: bool  # the mailbox is the \\Drafts one (by special-use or by name)


@dataclass(frozen=True)
class CompressionStarted:
    """COMPRESS was accepted: from here on the stream is unreadable (relay goes blind)."""


Event = (
    CapabilityListed | LoggedIn | MailboxSelected | MessageFetched | Appended | CompressionStarted
)


class ImapSyntaxError(ValueError):
    """The interpreter met bytes it cannot read; the relay falls back to a blind pipe."""


# ---------------------------------------------------------------------------------------------
# Framing


# Pieces are plain tuples, told apart by their length: they are made for every line on the
# hot path, where a NamedTuple costs ten times as much.
#   line:      (data, literal, first) -- one line with its CRLF (an over-long one: head and tail
#              only); the size of the literal announced at its end or -1; whether it starts a
#              command/response (False: it continues one after a literal)
#   chunk:     (data, last) -- literal bytes; whether they are the literal's last
#   cancelled: () -- a synchronising literal the server refused: the command ended without it
_Line = tuple[bytes, int, bool]
_Chunk = tuple[memoryview, bool]
_Cancelled = tuple[()]
_Piece = _Line | _Chunk | _Cancelled

# `{n}`, `{n+}`, `~{n}` at the end of a line (RFC 9051 §4.3, RFC 7888, RFC 3516).
_LITERAL_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n\Z")
_MAX_HELD = 64 * 1024  # an incomplete line longer than this is forwarded without waiting
_LONG_KEEP = 1024  # what is kept of an over-long line for the interpreter


class _Framer:
    """Cuts one direction into lines and literal data; subclasses decide what to forward."""

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self._partial = b""  # an incomplete line, not yet forwarded
        self._long_head: bytes | None = None  # an over-long incomplete line, already forwarded
        self._long_tail = b""
        self._literal_left = 0
        self._continues = False  # the current command/response goes on after a literal
        self._dropping = False  # bytes of the current command are withheld (proxy answers it)
        self._stop = False  # discard the rest of this read (after an accepted STARTTLS)

    @property
    def at_boundary(self) -> bool:
        """Between two commands/responses: nothing partial, no literal pending."""
        return (
            not self._partial
            and self._long_head is None
            and self._literal_left == 0
            and not self._continues
        )

    def held(self) -> bytes:
        """Bytes received but not forwarded (an incomplete line); cleared."""
        data, self._partial = self._partial, b""
        return data

    def _line(self, line: bytes, literal: int, sync: bool, first: bool) -> bytes | None:
        """Handle a complete line; return a replacement to forward (b"" drops it) or None."""
        raise NotImplementedError

    def receive_data(self, data: bytes) -> bytes:
        """Frame `data`; return the bytes to forward now."""
        if self._partial:
            data, self._partial = self._partial + data, b""
        out: list[bytes] = []
        n = len(data)
        pos = 0
        fwd = 0  # data[fwd:pos] is yet to be forwarded unchanged
        view: memoryview | None = None
        while pos < n:
            left = self._literal_left
            if left:
                take = left if left < n - pos else n - pos
                if view is None:
                    view = memoryview(data)
                self._literal_left = left - take
                if self._dropping:
                    out.append(data[fwd:pos])
                    fwd = pos + take
                else:
                    self.pieces.append((view[pos : pos + take], take == left))
                pos += take
                continue
            eol = data.find(b"\n", pos)
            if eol < 0:
                tail = data[pos:]
                if self._long_head is None and len(tail) <= _MAX_HELD:
                    out.append(data[fwd:pos])
                    self._partial = tail
                    fwd = n
                else:
                    # An endless line (a huge SEARCH result, say): forward it as it comes and
                    # keep its head and tail, which is all the interpreter needs.
                    if self._long_head is None:
                        self._long_head = tail[:_LONG_KEEP]
                    self._long_tail = (self._long_tail + tail)[-64:]
                break
            end = eol + 1
            line = data[pos:end]
            if self._long_head is not None:
                # Its start went out already: no rewrite, no interception for this one.
                line = self._long_head + b" " + (self._long_tail + line)[-64:]
                self._long_head, self._long_tail = None, b""
                self._frame_line(line)
                pos = end
                continue
            replacement = self._frame_line(line)
            if replacement is not None:
                out.append(data[fwd:pos])
                out.append(replacement)
                fwd = end
            pos = end
            if self._stop:
                self._stop = False
                fwd = n
                break
        if not out:
            return data if fwd == 0 else data[fwd:]
        out.append(data[fwd:])
        return b"".join(out)

    def _frame_line(self, line: bytes) -> bytes | None:
        literal, sync = -1, False
        if line.endswith(b"}\r\n") or line.endswith(b"}\n"):
            m = _LITERAL_END.search(line, max(0, len(line) - 32))
            if m is not None:
                literal, sync = int(m.group(1)), not m.group(2)
        first = not self._continues
        self._continues = literal >= 0
        self._literal_left = max(literal, 0)
        dropping = self._dropping
        replacement = self._line(line, literal, sync, first)
        if dropping or self._dropping:
            replacement = b""
            if not self._continues:
                self._dropping = False
        return replacement


class _ServerFramer(_Framer):
    def __init__(self, policy: _Policy, client: _ClientFramer) -> None:
        super().__init__()
        self._policy = policy
        self._client = client
        self.bye_seen = False

    def _line(self, line: bytes, literal: int, sync: bool, first: bool) -> bytes | None:
        self.pieces.append((line, literal, first))
        if not first:
            return None
        head = line[:1]
        if head == b"+":
            self._client.continuation()
            return None
        if head == b"*":
            word = line[2:12].upper()
            if word == b"CAPABILITY":
                return self._rewrite(line)
            if word[:3] == b"BYE":
                self.bye_seen = True
            elif (word[:2] == b"OK" or word[:7] == b"PREAUTH") and b"[" in line:
                return self._rewrite(line)  # a greeting's [CAPABILITY ...] code
        else:
            self._client.tagged(line[: line.find(b" ")])
            if b"[" in line:
                return self._rewrite(line)  # `tag OK [CAPABILITY ...]` after sign-in
        return None

    def _rewrite(self, line: bytes) -> bytes | None:
        if len(line) < 8192 and b"CAPABILITY" in line.upper():
            new = rewrite_line(line, self._policy.capability_policy())
            return None if new is line else new
        return None


_COMMAND_HEAD = re.compile(rb"([^ \r\n]+) ([A-Za-z]+)")


class _ClientFramer(_Framer):
    def __init__(self, policy: _Policy) -> None:
        super().__init__()
        self._policy = policy
        self.replies: list[bytes] = []  # the proxy's own answers, to send to the client
        self.tls_requested = False
        self._waiting_tag: bytes | None = None  # command whose `{n}` awaits the server's `+`
        self._tag = b""  # tag of the command being framed
        self._refusal = b""  # the answer due when a withheld command ends

    def continuation(self) -> None:
        """The server sent `+`: a waiting synchronising literal may now come (RFC 9051 §7.5)."""
        self._waiting_tag = None

    def tagged(self, tag: bytes) -> None:
        """The server answered `tag`; if its literal was still awaited, the command is over."""
        if self._waiting_tag is not None and tag == self._waiting_tag:
            self._waiting_tag = None
            self._literal_left = 0
            self._continues = False
            self.pieces.append(())

    def receive_data(self, data: bytes) -> bytes:
        if self.tls_requested:
            # RFC 9051 §6.2.1 / RFC 2595 §3.1: bytes sent after STARTTLS before the handshake
            # are an injection attempt, never commands.
            return b""
        self._waiting_tag = None  # bytes after `{n}` are its data, whatever the server said
        return super().receive_data(data)

    def _line(self, line: bytes, literal: int, sync: bool, first: bool) -> bytes | None:
        if first:
            m = _COMMAND_HEAD.match(line)
            self._tag = m.group(1) if m else b""
            if m is not None:
                name = m.group(2).upper()
                if name == b"STARTTLS":
                    return self._starttls(line)
                if name in (b"LOGIN", b"AUTHENTICATE") and not self._policy.plaintext_login_ok():
                    self._dropping = True
                    self._refusal = (
                        self._tag + b" NO [PRIVACYREQUIRED] "
                        + self._policy.privacy_hint() + b"\r\n"
                    )
        if self._dropping:
            if sync and literal >= 0:
                # The client waits for `+` that will not come: answer now, command over
                # (RFC 9051 §7.5 allows a tagged answer in place of the continuation).
                self._literal_left = 0
                self._continues = False
            if not self._continues:
                self.replies.append(self._refusal)
            return b""
        if sync and literal >= 0:
            self._waiting_tag = self._tag
        self.pieces.append((line, literal, first))
        return None

    def _starttls(self, line: bytes) -> bytes:
        tag = self._tag
        if line.strip().upper() != tag.upper() + b" STARTTLS":
            self.replies.append(tag + b" BAD STARTTLS takes no arguments\r\n")
        elif self._policy.client_tls:
            self.replies.append(tag + b" BAD TLS is already active\r\n")
        elif not self._policy.tls_available:
            self.replies.append(tag + b" BAD STARTTLS is not offered by this proxy\r\n")
        elif self._policy.authenticated:
            self.replies.append(tag + b" BAD STARTTLS is only allowed before signing in\r\n")
        else:
            self.replies.append(tag + b" OK Begin TLS negotiation now\r\n")
            self.tls_requested = True
            self._stop = True
        return b""


# ---------------------------------------------------------------------------------------------
# Policy shared by both directions


@dataclass
class _Policy:
    client_tls: bool
    tls_available: bool
    loopback: bool
    authenticated: bool = False

    def plaintext_login_ok(self) -> bool:
        return self.client_tls or self.loopback

    def privacy_hint(self) -> bytes:
        if self.tls_available:
            return b"Sign-in over plaintext is refused; use STARTTLS or the TLS port"
        return b"Sign-in over plaintext is only accepted from this machine"

    def capability_policy(self) -> CapabilityPolicy:
        return CapabilityPolicy(
            starttls=self.tls_available and not self.client_tls and not self.authenticated,
            logindisabled=not self.plaintext_login_ok(),
        )


# ---------------------------------------------------------------------------------------------
# Interpretation

_TOKEN = re.compile(
    rb"""
     (?P<sp>[ ]+)
    |(?P<open>\()
    |(?P<close>\))
    |"(?P<quoted>(?:[^"\\\r\n]|\\.)*)"
    |~?\{(?P<literal>\d+)\+?\}(?=\r?\n\Z)
    |(?P<atom>(?:[^ ()"\r\n{\[]|\[[^\]\r\n]*\])+)
    |(?P<eol>\r?\n\Z)
    """,
    re.X,
)
_UNQUOTE = re.compile(rb"\\(.)")


def _tokens(line: bytes, pos: int = 0) -> list[tuple[str, bytes]]:
    """Tokens of one line segment: (kind, value) with kind open/close/quoted/literal/atom."""
    out: list[tuple[str, bytes]] = []
    n = len(line)
    match = _TOKEN.match
    while pos < n:
        m = match(line, pos)
        if m is None:
            raise ImapSyntaxError(f"unreadable IMAP at byte {pos}: {line[pos:pos + 40]!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind == "eol":
            break
        if kind != "sp":
            value = m.group(kind)
            if kind == "quoted" and b"\\" in value:
                value = _UNQUOTE.sub(rb"\1", value)
            out.append((kind, value))
        pos = m.end()
    return out


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


# FETCH data items whose literal is a whole message or a header block (RFC 9051 §7.5.2).
_HEADER_ITEMS = frozenset({b"BODY[HEADER]", b"RFC822.HEADER"})


def _fetch_kind(name: bytes) -> str | None:
    """ "full", "headers" or None for a FETCH response item name (upper-cased)."""
    if name in (b"BODY[]", b"RFC822"):
        return "full"
    # BINARY[] is decoded content (RFC 3516), BODY[]<0> a partial: neither is the raw message.
    if name in _HEADER_ITEMS or name.startswith(b"BODY[HEADER.FIELDS"):
        return "headers" if not name.endswith(b">") else None
    return None


class _Command:
    """A client command awaiting its tagged answer (a plain class: one is made per command)."""

    __slots__ = ("tag", "name", "args", "depth", "login", "mailbox", "mechanism", "answered", "payloads")

    def __init__(self, tag: bytes, name: bytes) -> None:
        self.tag = tag
        self.name = name  # upper-cased, "UID FETCH" style
        self.args: list[tuple[str, bytes | Payload]] = []
        self.depth = 0
        self.login: str | None = None
        self.mailbox: str | None = None
        self.mechanism = ""
        self.answered = False  # AUTHENTICATE: the client's first response has been read
        self.payloads: list[Payload] = []


class _Fetch:
    """A FETCH response being read (RFC 9051 §7.5.2)."""

    __slots__ = ("seq", "depth", "name", "uid", "full", "headers", "envelope", "in_envelope")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.depth = 1
        self.name: bytes | None = None  # item name awaiting its value, at depth 1
        self.uid: int | None = None
        self.full: Payload | None = None
        self.headers: Payload | None = None
        self.envelope: list[tuple[str, bytes]] | None = None  # the ENVELOPE's tokens, when kept
        self.in_envelope = False


def _nest(tokens: list[tuple[str, bytes]]) -> Any:
    """Tokens of one parenthesised IMAP value as nested lists; NIL is None."""
    stack: list[list[Any]] = [[]]
    for kind, value in tokens:
        if kind == "open":
            stack.append([])
        elif kind == "close" and len(stack) > 1:
            done = stack.pop()
            stack[-1].append(done)
        elif kind == "atom" and value.upper() == b"NIL":
            stack[-1].append(None)
        else:
            stack[-1].append(value)
    return stack[0][0] if stack[0] else None


def _header_value(value: bytes) -> bytes:
    return b" ".join(value.split())  # no line breaks may reach a header


def _addresses(value: Any) -> bytes:
    """An ENVELOPE address list ((name adl mailbox host) ...) as a header value."""
    out = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, list) or len(entry) != 4 or entry[2] is None or entry[3] is None:
            continue  # group syntax (RFC 9051 §7.5.2): the group's members follow as entries
        address = entry[2] + b"@" + entry[3]
        name = entry[0]
        if name:
            quoted = _header_value(name).replace(b"\\", b"\\\\").replace(b'"', b'\\"')
            out.append(b'"' + quoted + b'" <' + address + b">")
        else:
            out.append(address)
    return b", ".join(out)


def envelope_headers(tokens: list[tuple[str, bytes]]) -> bytes | None:
    """A header block rebuilt from an ENVELOPE (RFC 9051 §7.5.2), or None without a Message-ID.

    Only an envelope with a Message-ID is kept: that is what lets the full message, when it
    passes later, complete this record instead of becoming a second one.
    """
    envelope = _nest(tokens)
    if not isinstance(envelope, list) or len(envelope) < 10 or not envelope[9]:
        return None
    date, subject, sender, _, reply_to, to, cc, bcc, in_reply_to, message_id = envelope[:10]
    lines = []
    for name, value in (
        (b"Date", date if isinstance(date, bytes) else None),
        (b"Subject", subject if isinstance(subject, bytes) else None),
        (b"From", _addresses(sender)),
        (b"Reply-To", _addresses(reply_to)),
        (b"To", _addresses(to)),
        (b"Cc", _addresses(cc)),
        (b"Bcc", _addresses(bcc)),
        (b"In-Reply-To", in_reply_to if isinstance(in_reply_to, bytes) else None),
        (b"Message-ID", message_id if isinstance(message_id, bytes) else None),
    ):
        if value:
            lines.append(name + b": " + _header_value(value))
    return b"\r\n".join(lines) + b"\r\n\r\n"


_FAST_UID = re.compile(rb"[ (]UID (\d+)", re.I)
_FAST_ITEM = re.compile(
    rb"[ (]((?:BODY|BINARY)\[[^\]]*\](?:<\d+>)?|RFC822(?:\.HEADER|\.TEXT)?) ~?\{\d+\}\r?\n\Z", re.I
)


class _Interpreter:
    """Commands and responses → events; state of the session as the client and server see it."""

    def __init__(self, policy: _Policy, spill_threshold: int) -> None:
        self._policy = policy
        self._spill = spill_threshold
        self._commands: dict[bytes, _Command] = {}
        self._command: _Command | None = None  # the client command being read
        self._client_literal: Payload | None = None
        self._sasl: _Command | None = None  # AUTHENTICATE awaiting client responses
        self._idle: _Command | None = None
        self._login: str | None = None
        self._selected: tuple[str, int | None] | None = None
        self._uidvalidity: int | None = None
        self._drafts: set[str] = {"DRAFTS"}
        self.keep = True  # build payloads for messages (off when nobody is captured)
        # server side
        self._response: str | None = None  # kind of the multi-part response being read
        self._fetch: _Fetch | None = None
        self._server_literal: Payload | None = None
        self._server_literal_owner: _Fetch | None = None
        self.events: list[Event] = []

    @property
    def pending(self) -> bool:
        """A command other than IDLE awaits its tagged answer."""
        return any(c is not self._idle for c in self._commands.values())

    # -- client → server --------------------------------------------------------------------

    def client_pieces(self, pieces: list[_Piece]) -> None:
        for piece in pieces:
            if len(piece) == 2:
                if self._client_literal is not None:
                    self._client_literal.write(piece[0])
                    if piece[1]:
                        self._client_literal.finish()
                        self._client_literal = None
            elif len(piece) == 3:
                if piece[2]:
                    self._command_start(piece[0], piece[1])
                elif self._command is not None:
                    self._command_args(self._command, piece[0], 0, piece[1])
            else:  # cancelled
                if self._client_literal is not None:
                    self._client_literal.discard()
                    self._client_literal = None
                self._command = None

    def _command_start(self, data: bytes, literal: int) -> None:
        if self._sasl is not None and self._sasl.tag in self._commands:
            self._sasl_response(self._sasl, data)
            return
        if self._idle is not None and data.strip().upper() == b"DONE":
            return
        m = _COMMAND_HEAD.match(data)
        if m is None:
            self._command = None
            return
        tag, name = m.group(1), m.group(2).upper()
        pos = m.end()
        if name == b"UID":
            sub = _COMMAND_HEAD.match(data, m.start(2))
            if sub is not None:
                name = b"UID " + sub.group(2).upper()
                pos = sub.end()
        command = _Command(tag, name)
        self._commands[tag] = command
        self._command = command if literal >= 0 else None
        if name in (b"LOGIN", b"SELECT", b"EXAMINE", b"APPEND", b"AUTHENTICATE"):
            self._command = command
            self._command_args(command, data, pos, literal)
            if literal < 0:
                self._command = None
        elif name == b"IDLE":
            self._idle = command

    def _command_args(self, command: _Command, data: bytes, pos: int, literal: int) -> None:
        if command.name not in (b"LOGIN", b"SELECT", b"EXAMINE", b"APPEND", b"AUTHENTICATE"):
            return
        for kind, value in _tokens(data, pos):
            if kind == "open":
                command.depth += 1
            elif kind == "close":
                command.depth -= 1
            if kind != "literal":
                command.args.append((kind, value))
        if literal >= 0:
            keep = self._keep_client_literal(command, literal)
            if keep is not None:
                command.args.append(("literal", keep))
                self._client_literal = keep if literal > 0 else None
                if literal == 0:
                    keep.finish()
            else:
                command.args.append(("literal", b""))
        if literal < 0:
            self._command_complete(command)

    def _keep_client_literal(self, command: _Command, size: int) -> Payload | None:
        index = len(command.args)
        if command.name == b"LOGIN":
            # The user name, never the password.
            return Payload(size, self._spill) if index == 0 else None
        if command.name in (b"SELECT", b"EXAMINE"):
            return Payload(size, self._spill) if index == 0 else None
        if command.name == b"APPEND":
            if index == 0 or (command.depth == 0 and self.keep):
                # The mailbox, then each message (MULTIAPPEND, RFC 3502); not CATENATE parts.
                return Payload(size, self._spill)
        return None

    def _command_complete(self, command: _Command) -> None:
        # Only small leading arguments are read as bytes; message literals stay Payloads.
        args = [
            v.read() if isinstance(v, Payload) else v
            for _, v in command.args[:2] if not isinstance(v, Payload) or not v.spilled
        ]
        if command.name == b"LOGIN" and args:
            command.login = _text(args[0])
        elif command.name in (b"SELECT", b"EXAMINE") and args:
            command.mailbox = _text(args[0])
        elif command.name == b"APPEND" and command.args:
            command.mailbox = _text(args[0])
            depth = 0
            for kind, value in command.args[1:]:
                depth += kind == "open"
                depth -= kind == "close"
                if kind == "atom" and isinstance(value, bytes) and value.upper() == b"CATENATE":
                    return  # RFC 4469: parts, not a message; nothing to capture
                if kind == "literal" and depth == 0 and isinstance(value, Payload):
                    command.payloads.append(value)
        elif command.name == b"AUTHENTICATE":
            command.mechanism = args[0].upper().decode("ascii", "replace") if args else ""
            self._sasl = command
            if len(args) > 1 and args[1] != b"=":
                self._sasl_response(command, args[1])

    def _sasl_response(self, command: _Command, data: bytes) -> None:
        """Read the identity from the client's first SASL response (relayproxy/sasl.py).

        Only the first: the ones after it carry the password (LOGIN) or proofs, never a login.
        """
        if not command.answered:
            command.answered = True
            command.login = sasl.identity(command.mechanism, data)

    # -- server → client --------------------------------------------------------------------

    def server_pieces(self, pieces: list[_Piece]) -> None:
        for piece in pieces:
            if len(piece) == 2:
                payload = self._server_literal
                if payload is not None:
                    payload.write(piece[0])
                    if piece[1]:
                        payload.finish()
                        self._server_literal = None
            elif len(piece) == 3:
                if piece[2]:
                    self._response_start(piece[0], piece[1])
                elif self._fetch is not None:
                    self._fetch_segment(self._fetch, piece[0], 0, piece[1])

    def _response_start(self, data: bytes, literal: int) -> None:
        self._fetch = None
        head = data[:1]
        if head == b"+":
            return
        if head == b"*":
            self._untagged(data, literal)
            return
        tag, _, rest = data.partition(b" ")
        command = self._commands.pop(tag, None)
        if command is None:
            return
        if command is self._sasl:
            self._sasl = None
        if command is self._idle:
            self._idle = None
        status = rest[:3].upper()
        if status[:2] == b"OK":
            self._tagged_ok(command, data)
        else:
            for payload in command.payloads:
                payload.discard()

    def _tagged_ok(self, command: _Command, data: bytes) -> None:
        name = command.name
        caps = parse_capabilities(data) if b"[CAPABILITY" in data.upper() else None
        if caps is not None:
            self.events.append(CapabilityListed(caps))
        if name in (b"LOGIN", b"AUTHENTICATE"):
            self._policy.authenticated = True
            self._login = command.login
            self.events.append(LoggedIn(command.login or ""))
        elif name in (b"SELECT", b"EXAMINE"):
            mailbox = command.mailbox or ""
            self._selected = (mailbox, self._uidvalidity)
            readonly = name == b"EXAMINE" or b"[READ-ONLY]" in data.upper()
            self.events.append(MailboxSelected(mailbox, self._uidvalidity, readonly))
        elif name == b"APPEND":
            mailbox = command.mailbox or ""
            drafts = self._is_drafts(mailbox)
            for payload in command.payloads:
                self.events.append(Appended(mailbox, payload, drafts))
        elif name == b"COMPRESS":
            self.events.append(CompressionStarted())

    def _is_drafts(self, mailbox: str) -> bool:
        name = mailbox.upper()
        return name in self._drafts or name.rsplit("/", 1)[-1] == "DRAFTS" or name.rsplit(
            ".", 1
        )[-1] == "DRAFTS"

    def _untagged(self, data: bytes, literal: int) -> None:
        word_end = data.find(b" ", 2)
        if data[2:3].isdigit():  # `* n EXISTS`, `* n FETCH (...)`...
            pos = word_end + 7
            if data[word_end + 1 : pos].upper() == b"FETCH ":
                if literal < 0 and data.find(b'"', pos) < 0:
                    return  # all on one line, no literal, no string: no message in it
                fetch = _Fetch(int(data[2:word_end]))
                self._fetch = fetch
                if data[pos : pos + 1] != b"(":
                    raise ImapSyntaxError(f"FETCH without a list: {data[:60]!r}")
                self._fetch_segment(fetch, data, pos + 1, literal)
            return
        word = data[2:word_end if word_end > 0 else None].strip().upper()
        if word == b"CAPABILITY":
            caps = parse_capabilities(data)
            if caps is not None:
                self.events.append(CapabilityListed(caps))
        elif word == b"PREAUTH":
            self._policy.authenticated = True
        elif word == b"OK":
            upper = data.upper()
            if b"[UIDVALIDITY " in upper:
                start = upper.index(b"[UIDVALIDITY ") + 13
                self._uidvalidity = int(data[start : data.index(b"]", start)])
            elif b"[CAPABILITY" in upper:
                caps = parse_capabilities(data)
                if caps is not None:
                    self.events.append(CapabilityListed(caps))
        elif word in (b"LIST", b"XLIST"):
            # RFC 6154: the \Drafts special-use attribute names the drafts mailbox.
            if b"\\DRAFTS" in data.upper() and literal < 0:
                tokens = _tokens(data, 2)
                if tokens and tokens[-1][0] in ("atom", "quoted"):
                    self._drafts.add(_text(tokens[-1][1]).upper())

    def _fetch_segment(self, fetch: _Fetch, data: bytes, pos: int, literal: int) -> None:
        """Read FETCH data items (RFC 9051 §7.5.2) from one line segment."""
        if data.find(b'"', pos) < 0:
            self._fetch_segment_fast(fetch, data, pos, literal)
            return
        for kind, value in _tokens(data, pos):
            if kind == "literal":
                continue  # handled below, from the framer's count
            if fetch.in_envelope and fetch.envelope is not None:
                fetch.envelope.append((kind, value))  # inside the ENVELOPE being kept
            if kind == "open":
                if fetch.depth == 1 and fetch.name == b"ENVELOPE" and self.keep:
                    fetch.envelope, fetch.in_envelope = [(kind, value)], True
                fetch.depth += 1
                continue
            if kind == "close":
                fetch.depth -= 1
                if fetch.depth == 1:
                    fetch.name = None  # a parenthesised value (FLAGS, ENVELOPE...) ended
                    fetch.in_envelope = False
                elif fetch.depth == 0:
                    self._fetch_complete(fetch)
                    return
                continue
            if fetch.depth != 1:
                continue
            if fetch.name is None:
                fetch.name = value.upper()
                continue
            name, fetch.name = fetch.name, None
            if name == b"UID":
                fetch.uid = int(value)
            elif kind == "quoted" and self.keep:
                target = _fetch_kind(name)
                if target == "full":
                    fetch.full = Payload.of(value)
                elif target == "headers":
                    fetch.headers = Payload.of(value)
        if literal >= 0:
            item = fetch.name if fetch.depth == 1 else None
            fetch.name = None
            target = _fetch_kind(item) if item is not None and self.keep else None
            self._expect_literal(fetch, target, literal)

    def _fetch_segment_fast(self, fetch: _Fetch, data: bytes, pos: int, literal: int) -> None:
        """The same for a segment without quoted strings, the usual case, without tokenizing.

        With no quoted string in it, every parenthesis in the segment is syntax (those inside a
        section, as in BODY[HEADER.FIELDS (FROM)], come in pairs), so the depth is a count; and
        an item whose value is a literal is the atom right before the ``{n}``.
        """
        start = pos - 1 if pos else 0
        depth = fetch.depth + data.count(b"(", pos) - data.count(b")", pos)
        fetch.depth, fetch.name = depth, None
        if fetch.uid is None:
            m = _FAST_UID.search(data, start)
            if m is not None:
                fetch.uid = int(m.group(1))
        if literal >= 0:
            target = None
            if depth == 1 and self.keep:
                m = _FAST_ITEM.search(data, start)
                if m is not None:
                    target = _fetch_kind(m.group(1).upper())
            self._expect_literal(fetch, target, literal)
        elif depth <= 0:
            self._fetch_complete(fetch)

    def _expect_literal(self, fetch: _Fetch, target: str | None, size: int) -> None:
        """A FETCH item's literal of `size` bytes follows: keep it when it is a message or headers."""
        payload = Payload(size, self._spill) if target is not None else None
        if target == "full":
            fetch.full = payload
        elif target == "headers":
            fetch.headers = payload
        self._server_literal = payload if size > 0 else None
        if payload is not None and size == 0:
            payload.finish()

    def _fetch_complete(self, fetch: _Fetch) -> None:
        self._fetch = None
        mailbox, uidvalidity = self._selected if self._selected else (None, None)
        if fetch.full is not None:
            if fetch.headers is not None:
                fetch.headers.discard()
            self.events.append(
                MessageFetched("full", fetch.full, fetch.seq, fetch.uid, mailbox, uidvalidity)
            )
        elif fetch.headers is not None:
            self.events.append(
                MessageFetched("headers", fetch.headers, fetch.seq, fetch.uid, mailbox, uidvalidity)
            )
        elif fetch.envelope is not None:
            block = envelope_headers(fetch.envelope)
            if block is not None:
                self.events.append(
                    MessageFetched("headers", Payload.of(block), fetch.seq, fetch.uid, mailbox, uidvalidity)
                )


# ---------------------------------------------------------------------------------------------
# The connection


class Connection:
    """Both directions of one proxied IMAP connection, as seen by the proxy.

    Call `receive_client`/`receive_server` with the bytes as they arrive and forward what they
    return; then call `client_events`/`server_events` for what happened. `take_replies` gives
    the proxy's own answers to send to the client (when `server_at_boundary`), and
    `tls_requested` says that a STARTTLS was accepted: start TLS with the client and call
    `tls_started`.
    """

    def __init__(
        self,
        *,
        client_tls: bool = False,
        tls_available: bool = False,
        loopback: bool = True,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
    ) -> None:
        self._policy = _Policy(client_tls, tls_available, loopback)
        self._client = _ClientFramer(self._policy)
        self._server = _ServerFramer(self._policy, self._client)
        self._interpreter = _Interpreter(self._policy, spill_threshold)

    def receive_client(self, data: bytes) -> bytes:
        """Frame bytes from the client; return those to send to the server now."""
        return self._client.receive_data(data)

    def receive_server(self, data: bytes) -> bytes:
        """Frame bytes from the server; return those to send to the client now."""
        return self._server.receive_data(data)

    def client_events(self) -> list[Event]:
        """Interpret what the client sent since the last call."""
        return self._drain(self._client, self._interpreter.client_pieces)

    def server_events(self) -> list[Event]:
        """Interpret what the server sent since the last call."""
        return self._drain(self._server, self._interpreter.server_pieces)

    def _drain(self, framer: _Framer, interpret: Callable[[list[_Piece]], None]) -> list[Event]:
        pieces, framer.pieces = framer.pieces, []
        interpreter = self._interpreter
        if pieces:
            interpret(pieces)
        events, interpreter.events = interpreter.events, []
        return events

    def take_replies(self) -> list[bytes]:
        """The proxy's own answers to client commands, due to the client."""
        replies, self._client.replies = self._client.replies, []
        return replies

    @property
    def tls_requested(self) -> bool:
        return self._client.tls_requested

    def tls_started(self) -> None:
        """TLS with the client is up: read its bytes again, capabilities change."""
        self._client.tls_requested = False
        self._policy.client_tls = True

    @property
    def server_at_boundary(self) -> bool:
        """The client may be sent a response of the proxy's own now."""
        return self._server.at_boundary

    @property
    def quiescent(self) -> bool:
        """Nothing in flight (or only IDLE): a BYE now would interrupt no command."""
        return (
            self._server.at_boundary
            and self._client.at_boundary
            and not self._interpreter.pending
        )

    @property
    def bye_seen(self) -> bool:
        """The server sent an untagged BYE."""
        return self._server.bye_seen

    @property
    def keep_bodies(self) -> bool:
        """Whether FETCH and APPEND messages become payloads (events) at all."""
        return self._interpreter.keep

    @keep_bodies.setter
    def keep_bodies(self, keep: bool) -> None:
        self._interpreter.keep = keep

    @property
    def login(self) -> str | None:
        return self._interpreter._login

    def held(self) -> tuple[bytes, bytes]:
        """Bytes held back (client→server, server→client), released for a blind pipe."""
        return self._client.held(), self._server.held()
