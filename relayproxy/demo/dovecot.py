"""A throwaway Dovecot, for the demo and the tests, on ports the OS picks.

Theory of operation: `start_dovecot` writes a config (the one in shared/TESTING.md), a
passwd-file and the TLS certificate from the `certs` fixture into a fresh folder, starts
`dovecot -F -c FILE` in the foreground and waits until its IMAP port accepts connections.
Users are added as one passwd-file each (`users.d/LOGIN`); messages
are seeded with IMAP APPEND (`append`) or delivered over LMTP (`deliver`), the latter running
the same path as real incoming mail (so IDLE sees it). The imap_zlib plugin is loaded so
that Dovecot offers COMPRESS=DEFLATE, as many providers do. Tests share one per session
and give each test its own user (`new_user`) so they do not see each other's mail.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from relayproxy.demo.certs import Certs

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port the OS considers free right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Return once `host:port` accepts a connection; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                code = process.returncode
                raise RuntimeError(f"dovecot exited with {code} before listening") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.02)  # polling a port: there is no event to wait on


_CONFIG = """\
protocols = imap lmtp
listen = {host}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
auth_mechanisms = plain login cram-md5
disable_plaintext_auth = no
auth_failure_delay = 0 secs
mail_fsync = never
mail_plugins = zlib
protocol imap {{
  mail_max_userip_connections = 500
  mail_plugins = $mail_plugins imap_zlib
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users.d/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {dir}/users.d/%u
}}
mail_location = maildir:{dir}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
}}
ssl = yes
ssl_cert = <{dir}/tls/cert.pem
ssl_key = <{dir}/tls/key.pem
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
  chroot =
}}
service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
  # No per-IP penalty (2 s, 4 s... per earlier failure) for tests that try wrong passwords.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth-worker {{
  user = {user}
}}
"""


@dataclass
class Dovecot:
    """A running Dovecot: where it listens, and helpers to add users and seed mail."""

    folder: Path
    host: str
    port: int
    tls_port: int
    lmtp_port: int
    certs: Certs
    process: subprocess.Popen[bytes] | None = None
    uid: int = 65534
    gid: int = 65534
    passwords: dict[str, str] = field(default_factory=dict)
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def ca(self) -> Path:
        """The CA certificate that signed Dovecot's certificate."""
        return self.certs.ca

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts Dovecot's certificate."""
        return ssl.create_default_context(cafile=str(self.certs.ca))

    def add_user(self, login: str, password: str) -> None:
        """Create (or change the password of) `login`; Dovecot sees it at the next sign-in."""
        self.passwords[login] = password
        # One passwd-file per user: Dovecot notices a changed file only by its mtime and size,
        # which two quick edits of one shared file can leave unchanged.
        line = f"{login}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{self.folder}/mail/{login}::\n"
        users = self.folder / "users.d" / login
        tmp = users.with_name(login + ".tmp")
        tmp.write_text(line)
        os.replace(tmp, users)

    def new_user(self, prefix: str = "user", domain: str = "example.com") -> tuple[str, str]:
        """A fresh user with an empty mailbox, for one test: returns (login, password)."""
        login = f"{prefix}{next(self._names)}@{domain}"
        password = f"pw-{login.split('@')[0]}-secret"
        self.add_user(login, password)
        return login, password

    def imap(self, login: str) -> imaplib.IMAP4:
        """A direct imaplib session to Dovecot, signed in as `login`."""
        client = imaplib.IMAP4(self.host, self.port)
        client.login(login, self.passwords[login])
        return client

    def append(self, login: str, messages: Iterable[bytes], mailbox: str = "INBOX") -> int:
        """APPEND `messages` to `mailbox` of `login`; returns how many were stored."""
        client = self.imap(login)
        try:
            client.select(mailbox)  # selected first: Dovecot would otherwise rescan on every APPEND
            count = 0
            for raw in messages:
                typ, _ = client.append(mailbox, None, None, raw)
                assert typ == "OK"
                count += 1
            return count
        finally:
            client.logout()

    def deliver(self, login: str, raw: bytes, sender: str = "sender@example.org") -> None:
        """Deliver `raw` to `login`'s INBOX over LMTP, as incoming mail arrives."""
        with smtplib.LMTP(self.host, self.lmtp_port) as lmtp:
            lmtp.sendmail(sender, [login], raw)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dovecot(certs: Certs, folder: Path | None = None, host: str = HOST) -> Dovecot:
    """Write a config into `folder` (a fresh temporary one by default) and start Dovecot on it."""
    if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
        raise RuntimeError("dovecot is not installed; run scripts/setup")
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="relayproxy-dovecot-"))
    base = Path(folder)
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user, group, uid, gid = "nobody", "nogroup", 65534, 65534
    else:
        import grp
        import pwd

        uid, gid = os.getuid(), os.getgid()
        user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    # Dovecot drops to `user` to read mail and the passwd-file: the folder must be reachable.
    base.chmod(0o755)
    for sub in ("run", "state", "tls", "mail", "users.d"):
        (base / sub).mkdir(exist_ok=True)
    os.chown(base / "mail", uid, gid) if os.geteuid() == 0 else None
    shutil.copy(certs.cert, base / "tls" / "cert.pem")
    shutil.copy(certs.key, base / "tls" / "key.pem")
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    port, tls_port, lmtp_port = sorted(ports)
    config = base / "dovecot.conf"
    config.write_text(
        _CONFIG.format(
            dir=base, host=host, user=user, group=group, uid=uid,
            port=port, tls_port=tls_port, lmtp_port=lmtp_port,
        )
    )
    dovecot = Dovecot(base, host, port, tls_port, lmtp_port, certs, uid=uid, gid=gid)
    dovecot.add_user("probe@example.com", "probe")
    dovecot.process = subprocess.Popen(
        [shutil.which("dovecot") or "/usr/sbin/dovecot", "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for p in (port, tls_port, lmtp_port):
            wait_for_port(host, p, process=dovecot.process)
    except Exception:
        dovecot.stop()
        log = base / "dovecot.log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"dovecot did not start: {detail}") from None
    return dovecot
