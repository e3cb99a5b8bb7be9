"""Mailbox names shown as people read them (RFC 3501 §5.1.3 modified UTF-7)."""

from __future__ import annotations

import pytest

from relayproxy.web.mailbox_names import readable


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("INBOX", "INBOX"),
        ("&AMk-l&AOk-ments envoy&AOk-s", "Éléments envoyés"),  # French Outlook's Sent
        ("Entw&APw-rfe", "Entwürfe"),
        ("&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", "Отправленные"),  # "," stands for "/"
        ("Tom &- Jerry", "Tom & Jerry"),
        ("&2D3eAA-", "\U0001f600"),  # a surrogate pair
        ("Broken &@@@- and &AOk", "Broken &@@@- and &AOk"),  # shown as it came
    ],
)
def test_modified_utf7_is_decoded_for_display(name: str, shown: str) -> None:
    assert readable(name) == shown
