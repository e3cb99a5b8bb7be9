"""BodyScanner and unstuff, h11-style: whole input, one byte at a time, and trailing data."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relayproxy.smtp.body import BodyScanner, unstuff


def scan(chunks: list[bytes]) -> tuple[bytes, bytes | None]:
    scanner = BodyScanner()
    body = b""
    for i, chunk in enumerate(chunks):
        part, after = scanner.feed(chunk)
        body += part
        if after is not None:
            return body, after + b"".join(chunks[i + 1 :])
    return body, None


STREAM = b"Subject: x\r\n\r\n..leading dot\r\nlong line\nbare LF\r\n.\r\nMAIL FROM:<a@b>\r\n"


def test_whole_input() -> None:
    assert scan([STREAM]) == (
        b"Subject: x\r\n\r\n..leading dot\r\nlong line\nbare LF\r\n",
        b"MAIL FROM:<a@b>\r\n",
    )


def test_one_byte_at_a_time() -> None:
    assert scan([bytes([b]) for b in STREAM]) == scan([STREAM])


def test_empty_message_right_after_the_data_command() -> None:
    assert scan([b".\r\n"]) == (b"", b"")
    assert scan([b".", b"\r", b"\n", b"QUIT\r\n"]) == (b"", b"QUIT\r\n")


def test_an_empty_first_line_is_not_the_end() -> None:
    assert scan([b"\r\n.\r\n"]) == (b"\r\n", b"")
    assert scan([b"\r", b"\n.", b"\r\n"]) == (b"\r\n", b"")


def test_dot_inside_a_line_or_stuffed_is_not_the_end() -> None:
    assert scan([b"a.\r\n..\r\n.x\r\n.\r\n"]) == (b"a.\r\n..\r\n.x\r\n", b"")
    # Unterminated: everything but what could start the terminator is passed on.
    assert scan([b"a.\r\n..\r\n.x\r\n"]) == (b"a.\r\n..\r\n", None)


def test_unstuff_removes_one_leading_dot_per_line() -> None:
    assert unstuff(b"..a\r\n...b\r\nc.d\r\n.\r\n") == b".a\r\n..b\r\nc.d\r\n\r\n"
    assert unstuff(b"x\n.y\r\n") == b"x\n.y\r\n"  # a bare LF does not start a line


lines = st.lists(
    st.binary(max_size=30).filter(lambda b: b"\r\n" not in b and not b.endswith(b"\r")),
    max_size=12,
)


@given(lines, st.binary(max_size=20), st.lists(st.integers(1, 40), max_size=20))
def test_any_message_and_any_chunking(body_lines: list[bytes], trailing: bytes,
                                      cuts: list[int]) -> None:
    message = b"".join(line + b"\r\n" for line in body_lines)
    stuffed = b"".join(
        (b"." + line if line.startswith(b".") else line) + b"\r\n" for line in body_lines
    )
    stream = stuffed + b".\r\n" + trailing
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(stream[at : at + cut])
        at += cut
    chunks.append(stream[at:])
    body, after = scan([c for c in chunks if c] or [b""])
    assert body == stuffed
    assert after == trailing
    assert unstuff(body) == message
