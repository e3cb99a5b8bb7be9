"""The two-minute demo: `python -m relayproxy.demo` (the README's `scripts/demo`).

It starts a throwaway Dovecot and a small submission server on loopback with a demo team
(Alice and Bob at example.com), runs `relayproxy serve` against them, then plays a few weeks of
mail with real clients: outside contacts write to the team (delivered into Dovecot), Alice and
Bob answer through the SMTP proxy (swaks and Python's smtplib) and file copies in Sent through
the IMAP proxy, and both read their mail through the IMAP proxy (mbsync). When the graph has
caught up it prints the web address and the demo sign-in, and keeps running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import json
import random
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path

from relayproxy import corpus
from relayproxy.demo.certs import Certs, make_certs
from relayproxy.demo.dovecot import Dovecot, free_port, start_dovecot, wait_for_port
from relayproxy.demo.upstream import DeliveringUpstream

HOST = "127.0.0.1"
TEAM = {
    "alice@example.com": ("Alice Example", "alice-demo", "full"),
    "bob@example.com": ("Bob Example", "bob-demo", "subject"),
}


def _port(preferred: int) -> int:
    """`preferred` when it is free, else any free port."""
    try:
        with contextlib.closing(__import__("socket").socket()) as probe:
            probe.bind((HOST, preferred))
        return preferred
    except OSError:
        return free_port()


def write_config(folder: Path, certs: Certs, dovecot: Dovecot, smtp_upstream: int, web_port: int) -> Path:
    members = "".join(
        f'\n[[team.members]]\nlogin = "{login}"\nname = "{name}"\naddresses = ["{login}"]\nsharing = "{sharing}"\n'
        for login, (name, _, sharing) in TEAM.items()
    )
    text = f"""# Written by the relayproxy demo.
[storage]
database = "{folder}/var/relayproxy.db"
blobs = "{folder}/var/blobs"

[imap]
listen = "{HOST}:{free_port()}"
listen_tls = "{HOST}:{free_port()}"
upstream = "{HOST}:{dovecot.tls_port}"
upstream_security = "tls"

[smtp]
listen = "{HOST}:{free_port()}"
listen_tls = "{HOST}:{free_port()}"
upstream = "{HOST}:{smtp_upstream}"
upstream_security = "none"

[tls]
cert = "{certs.cert}"
key = "{certs.key}"
upstream_ca = "{certs.ca}"

[web]
listen = "{HOST}:{web_port}"

[serve]
shutdown_timeout = 5

[team]
domains = ["example.com"]
{members}"""
    path = folder / "relayproxy.toml"
    path.write_text(text)
    return path


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return dict(json.loads(response.read()))


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError("relayproxy serve exited; see serve.log in the demo folder")
        try:
            return _get_json(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Traffic:
    """A few weeks of a small team's mail, played through the proxies with real clients."""

    def __init__(self, folder: Path, settings_path: Path, certs: Certs, dovecot: Dovecot, seed: int = 7) -> None:
        from relayproxy import config

        self.folder = folder
        self.settings = config.load(settings_path)
        self.certs = certs
        self.dovecot = dovecot
        self.rng = random.Random(seed)
        self.contacts = corpus.contacts(self.rng, 18)
        self.now = datetime.now(UTC)
        self.inbound: list[tuple[str, corpus.Person, str, datetime]] = []  # (member, contact, message-id, date)

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certs.ca))

    def receive(self, count: int) -> None:
        """Outside contacts write to the team: delivered straight into Dovecot, as from the internet."""
        members = list(TEAM)
        for i in range(count):
            member = members[i % 2]
            contact = self.contacts[int(self.rng.paretovariate(1.3)) % len(self.contacts)]
            when = self.now - timedelta(days=self.rng.uniform(1, 60))
            cc = [corpus.Person(TEAM[members[(i + 1) % 2]][0], members[(i + 1) % 2])] if i % 5 == 0 else []
            raw = corpus.message(self.rng, contact, [corpus.Person(TEAM[member][0], member)], cc, when,
                                 size=6000, index=i)
            self.dovecot.deliver(member, raw, sender=contact.address)
            for line in raw.split(b"\r\n"):
                if line.startswith(b"Message-ID: "):
                    self.inbound.append((member, contact, line[12:].decode(), when))
                    break

    def _reply(self, member: str, contact: corpus.Person, in_reply_to: str, received: datetime, i: int) -> bytes:
        when = min(self.now, received + timedelta(hours=self.rng.uniform(1, 30)))  # answered within a day or so
        raw = corpus.message(self.rng, corpus.Person(TEAM[member][0], member), [contact], [], when,
                             size=4000, reply_to_id=in_reply_to, index=100 + i)
        return raw.replace(b"Message-ID: <", f"Message-ID: <reply{i}.".encode(), 1)

    def send(self, count: int) -> list[tuple[str, bytes]]:
        """Members answer through the SMTP proxy: the first few with swaks, the rest with smtplib."""
        smtp = self.settings.smtp.listen
        sent = []
        swaks = shutil.which("swaks")
        for i, (member, contact, message_id, received) in enumerate(self.inbound[:count]):
            raw = self._reply(member, contact, message_id, received, i)
            password = TEAM[member][1]
            if swaks and i < 4:
                message = self.folder / f"reply{i}.eml"
                message.write_bytes(raw)
                subprocess.run(
                    [swaks, "--server", f"{smtp.host}:{smtp.port}", "--tls", "--auth", "PLAIN",
                     "--auth-user", member, "--auth-password", password, "--from", member,
                     "--to", contact.address, "--data", f"@{message}", "--silent", "2"],
                    check=True, timeout=60,
                )
            else:
                with smtplib.SMTP(smtp.host, smtp.port, timeout=60) as client:
                    client.starttls(context=self._tls())
                    client.login(member, password)
                    client.sendmail(member, [contact.address], raw)
            sent.append((member, raw))
        return sent

    def file_in_sent(self, sent: list[tuple[str, bytes]]) -> None:
        """As a mail client does after sending: APPEND a copy to Sent, through the IMAP proxy."""
        imap = self.settings.imap.listen
        by_member: dict[str, list[bytes]] = {}
        for member, raw in sent:
            by_member.setdefault(member, []).append(raw)
        for member, messages in by_member.items():
            client = imaplib.IMAP4(imap.host, imap.port)
            client.starttls(ssl_context=self._tls())
            client.login(member, TEAM[member][1])
            client.select("Sent")
            for raw in messages:
                client.append("Sent", r"(\Seen)", None, raw)
            client.logout()

    def introduce(self) -> None:
        """Alice introduces a new contact to Bob: one message, a Cc, counted once for the team."""
        imap = self.settings.smtp.listen
        contact = self.contacts[-1]
        raw = (
            f"From: Alice Example <alice@example.com>\r\nTo: {contact.name} <{contact.address}>\r\n"
            f"Cc: Bob Example <bob@example.com>\r\nSubject: Introduction\r\nMessage-ID: {make_msgid('intro')}\r\n"
            f"Date: {self.now.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n\r\n"
            f"{contact.name.split()[0]}, meet Bob, who runs our pilots.\r\n\r\nAlice\r\n"
        ).encode()
        with smtplib.SMTP(imap.host, imap.port, timeout=60) as client:
            client.starttls(context=self._tls())
            client.login("alice@example.com", TEAM["alice@example.com"][1])
            client.sendmail("alice@example.com", [contact.address, "bob@example.com"], raw)

    def read(self) -> str:
        """Each member reads all mail through the IMAP proxy: mbsync when installed, else imaplib."""
        mbsync = shutil.which("mbsync")
        imap = self.settings.imap.listen
        for member, (_, password, _) in TEAM.items():
            local = self.folder / "clients" / member
            local.mkdir(parents=True, exist_ok=True)
            if mbsync:
                rc = self.folder / "clients" / f"{member}.mbsyncrc"
                rc.write_text(
                    f"IMAPAccount demo\nHost localhost\nPort {imap.port}\nUser {member}\nPass {password}\n"
                    f"SSLType STARTTLS\nCertificateFile {self.certs.ca}\nAuthMechs LOGIN\n\n"
                    f"IMAPStore remote\nAccount demo\n\nMaildirStore local\nPath {local}/\nInbox {local}/INBOX\n"
                    f"SubFolders Verbatim\n\nChannel all\nFar :remote:\nNear :local:\nPatterns *\n"
                    f"Create Near\nSync Pull\nSyncState *\n"
                )
                result = subprocess.run([mbsync, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
                if result.returncode != 0 and "SSLType" in result.stderr:  # isync 1.5 renamed it
                    rc.write_text(rc.read_text().replace("SSLType", "TLSType"))
                    result = subprocess.run([mbsync, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
                if result.returncode == 0:
                    continue
            client = imaplib.IMAP4(imap.host, imap.port)
            client.starttls(ssl_context=self._tls())
            client.login(member, password)
            for mailbox in ("INBOX", "Sent"):
                client.select(mailbox, readonly=True)
                client.fetch("1:*", "(BODY.PEEK[])")
            client.logout()
        return "mbsync" if mbsync else "imaplib"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relayproxy-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="var/demo", help="where the demo keeps everything (wiped first)")
    parser.add_argument("--web-port", type=int, default=8080)
    parser.add_argument("--exit", action="store_true", help="stop once the traffic is in, instead of serving on")
    args = parser.parse_args(argv)
    folder = Path(args.folder).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.monotonic()
    print("relayproxy demo: starting a throwaway Dovecot and SMTP server on loopback…", flush=True)
    certs = make_certs(folder / "tls")
    dovecot = start_dovecot(certs, folder / "dovecot")
    for login, (_, password, _) in TEAM.items():
        dovecot.add_user(login, password)
    try:
        return asyncio.run(_run(args, folder, certs, dovecot, started))
    finally:
        dovecot.stop()


async def _run(args: argparse.Namespace, folder: Path, certs: Certs, dovecot: Dovecot, started: float) -> int:
    passwords = {login: password for login, (_, password, _) in TEAM.items()}
    upstream = DeliveringUpstream(passwords, ("example.com",), (dovecot.host, dovecot.lmtp_port))
    smtp_port = await upstream.start(HOST)
    config_path = write_config(folder, certs, dovecot, smtp_port, _port(args.web_port))
    log = (folder / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "relayproxy.cli", "serve", "--config", str(config_path)], stdout=log, stderr=log
    )
    try:
        traffic = Traffic(folder, config_path, certs, dovecot)
        web = traffic.settings.web_listen
        health_url = f"http://{web.host}:{web.port}/healthz"
        await asyncio.to_thread(wait_healthy, health_url, serve)
        for listener in (traffic.settings.smtp.listen, traffic.settings.imap.listen):
            wait_for_port(listener.host, listener.port)
        print("relayproxy demo: playing mail through the proxies…", flush=True)
        await asyncio.to_thread(traffic.receive, 30)
        sent = await asyncio.to_thread(traffic.send, 14)
        await asyncio.to_thread(traffic.file_in_sent, sent)
        await asyncio.to_thread(traffic.introduce)
        reader = await asyncio.to_thread(traffic.read)
        while True:  # the journal drains in a moment; wait for it rather than guess
            health = await asyncio.to_thread(_get_json, health_url)
            if health.get("journal_lag") == 0:
                break
            await asyncio.sleep(0.2)
        counts = _counts(traffic)
        imap, smtp = traffic.settings.imap.listen, traffic.settings.smtp.listen
        print(
            f"relayproxy demo: ready in {time.monotonic() - started:.0f} s — {counts['messages']} messages, "
            f"{counts['people']} people, {counts['companies']} companies "
            f"(sent with swaks and smtplib, read with {reader}).\n"
            f"\n  Web site:  http://{web.host}:{web.port}/\n"
            f"  Sign in:   alice@example.com / alice-demo   (or bob@example.com / bob-demo)\n"
            f"  IMAP proxy {imap} (STARTTLS), SMTP proxy {smtp} (STARTTLS); CA certificate {certs.ca}\n"
            f"  Config {config_path}; log {folder / 'serve.log'}\n",
            flush=True,
        )
        if not args.exit:
            print("Press Ctrl-C to stop the demo.", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        return 0
    finally:
        serve.send_signal(signal.SIGTERM)
        await asyncio.to_thread(serve.wait, 30)
        await upstream.stop()
        log.close()


def _counts(traffic: Traffic) -> dict[str, int]:
    from relayproxy.graph import queries
    from relayproxy.graph.store import connect

    with contextlib.closing(connect(traffic.settings.storage.database, readonly=True)) as conn:
        return queries.counts(conn)


if __name__ == "__main__":
    sys.exit(main())
