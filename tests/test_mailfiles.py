"""Reading mbox files: separators found across any chunking, body lines that begin with
"From " left inside their message, a truncated last message kept, From_ line dates read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from relayproxy import mailfiles

FIRST = b"From: jane@globex.com\nSubject: one\n\nFrom there we went on.\nFrom 9 to 5, every day.\n\n"
SECOND = b"From: bob@initech.co.uk\r\nSubject: two\r\n\r\n>From a quoted line\r\n\r\n"
THIRD = b"From: pat@gmail.com\nSubject: three, cut short\n\nThe end is miss"
MBOX = (
    b"From jane@globex.com Mon Nov  2 10:00:00 2026\n" + FIRST
    + b"From - Tue Nov  3 11:30:00 2026\r\n" + SECOND
    + b"From MAILER-DAEMON Wed Nov  4 12:00:59 2026\n" + THIRD
)


@pytest.mark.parametrize("chunk", [len(MBOX) * 2, 1, 7, 64])
def test_messages_are_split_at_from_lines_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(mailfiles, "_CHUNK", chunk)
    path = tmp_path / "mail.mbox"
    path.write_bytes(MBOX)
    refs = list(mailfiles.scan_path(path))
    assert [ref.load() for ref in refs] == [FIRST, SECOND, THIRD]
    assert [ref.received for ref in refs] == [
        datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 11, 30, tzinfo=UTC),
        datetime(2026, 11, 4, 12, 0, 59, tzinfo=UTC),
    ]


def test_a_file_that_is_not_an_mbox_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(FIRST)
    assert [ref.load() for ref in mailfiles.scan_path(path)] == [FIRST]


def test_a_missing_path_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(mailfiles.MailFileError, match="nowhere.mbox does not exist"):
        list(mailfiles.scan_path(tmp_path / "nowhere.mbox"))


def test_a_folder_of_message_files_without_names_is_read_in_number_order(tmp_path: Path) -> None:
    # MH folders number their files (1, 2, ... 10); the Enron corpus names them "1.", "2.", ...
    folder = tmp_path / "allen-p" / "sent"
    folder.mkdir(parents=True)
    for n in (10, 2, 1):
        (folder / f"{n}.").write_bytes(b"Message-ID: <%d@example.com>\nSubject: %d\n\nbody\n" % (n, n))
    (folder / "Inbox.msf").write_bytes(b"// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")  # Thunderbird's index
    (folder / "notes.txt").write_bytes(b"not mail at all\n")
    (folder / "folderTree.json").write_bytes(b'{"version": 1}\n')
    loaded = [ref.load() for ref in mailfiles.scan_path(tmp_path / "allen-p")]
    assert [m.split(b"\n")[1] for m in loaded] == [b"Subject: 1", b"Subject: 2", b"Subject: 10"]


def test_an_apple_mail_emlx_file_is_the_message_without_its_length_line_and_plist(tmp_path: Path) -> None:
    folder = tmp_path / "Messages"
    folder.mkdir()
    (folder / "123.emlx").write_bytes(b"%d\n" % len(FIRST) + FIRST + b'<?xml version="1.0"?>\n<plist/>\n')
    assert [ref.load() for ref in mailfiles.scan_path(tmp_path)] == [FIRST]
