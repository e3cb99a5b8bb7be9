"""End to end: Bob sends through the SMTP proxy, Alice reads through the IMAP proxy with
mbsync; the graph holds one message counted once, both directions right, on the person page."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest

from relayproxy.demo.dovecot import Dovecot
from tests.e2e.system import Serve, UpstreamThread, running, write_config
from tests.peers.certs import Certs

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None, reason="needs mbsync (scripts/setup installs it)")


def mbsync(folder: Path, login: str, password: str, port: int, ca: Path) -> None:
    store = folder / "mail" / login
    store.mkdir(parents=True)
    rc = folder / f"{login}.mbsyncrc"
    rc.write_text(
        f"IMAPAccount a\nHost localhost\nPort {port}\nUser {login}\nPass {password}\nSSLType STARTTLS\n"
        f"CertificateFile {ca}\nAuthMechs LOGIN\n\nIMAPStore remote\nAccount a\n\n"
        f"MaildirStore local\nPath {store}/\nInbox {store}/INBOX\nSubFolders Verbatim\n\n"
        f"Channel all\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSync Pull\nSyncState *\n"
    )
    result = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_bob_sends_alice_reads_one_message_counted_once(tmp_path: Path, dovecot: Dovecot, certs: Certs) -> None:
    alice, alice_pw = dovecot.new_user("alice")
    bob, bob_pw = dovecot.new_user("bob")
    upstream = UpstreamThread({alice: alice_pw, bob: bob_pw}, dovecot)
    serve = Serve(tmp_path, write_config(tmp_path, certs, {alice: alice_pw, bob: bob_pw}, upstream.port, dovecot,
                                         sharing={bob: "subject"}))
    try:
        with running(serve):
            settings = serve.settings
            raw = (
                f"From: Bob <{bob}>\r\nTo: Jane Doe <jane@globex.com>\r\nCc: Alice <{alice}>\r\n"
                f"Subject: Pilot kickoff\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                f"Message-ID: <kickoff@example.com>\r\n\r\nJane, welcome aboard.\r\n"
            ).encode()
            with smtplib.SMTP(settings.smtp.listen.host, settings.smtp.listen.port) as client:
                client.starttls(context=ssl.create_default_context(cafile=str(certs.ca)))
                client.login(bob, bob_pw)
                refused = client.sendmail(bob, ["jane@globex.com", alice], raw)
            assert refused == {}
            dovecot.deliver(alice, (
                "From: Jane Doe <jane@globex.com>\r\nTo: Alice <" + alice + ">\r\nSubject: Re: Pilot kickoff\r\n"
                "Date: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <reply@globex.com>\r\n\r\nThanks!\r\n"
            ).encode())
            mbsync(tmp_path, alice, alice_pw, settings.imap.listen.port, certs.ca)
            serve.wait_ingested()

            people = serve.api("/api/people", alice, alice_pw)
            jane = next(p for p in people["items"] if p["emails"] == ["jane@globex.com"])
            assert (jane["messages_sent"], jane["messages_received"]) == (1, 1)
            assert set(jane["strength_by_member"]) == {bob, alice}
            assert jane["first_contacted"] == "2026-11-23T10:00:00Z"
            assert jane["last_contacted"] == "2026-11-24T09:00:00Z"
            assert [p["emails"] for p in people["items"]] == [["jane@globex.com"]]  # no person for the team

            page = serve.api(f"/api/people/{jane['id']}", alice, alice_pw)
            subjects = sorted(m.get("subject") or "" for m in page["messages"])
            assert subjects == ["Pilot kickoff", "Re: Pilot kickoff"]
    finally:
        upstream.close()
