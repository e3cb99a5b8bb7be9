"""`relayproxy serve` as an operator sees it: health, metrics, reload, clear failures, clean stop."""

from __future__ import annotations

import base64
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from relayproxy.demo.dovecot import free_port
from tests.e2e.system import Serve, UpstreamThread, write_config
from tests.peers.certs import Certs


def serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "relayproxy.cli", "serve", "--config", str(config)]


PASSWORD = "s3cret-Pw-42"


def test_health_metrics_reload_and_clean_stop(tmp_path: Path, certs: Certs) -> None:
    upstream = UpstreamThread({"alice@example.com": PASSWORD}, None)
    serve = Serve(tmp_path, write_config(tmp_path, certs, {"alice@example.com": PASSWORD}, upstream.port, None))
    try:
        serve.start()
        health = serve.health()
        assert health["status"] == "ok" and health["database_writable"] and health["journal_lag"] == 0
        web = serve.settings.web_listen
        with urllib.request.urlopen(f"http://{web.host}:{web.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "relayproxy_journal_lag 0" in text

        smtp = serve.settings.smtp.listen
        with smtplib.SMTP(smtp.host, smtp.port) as client:
            client.starttls(context=ssl.create_default_context(cafile=str(certs.ca)))
            client.login("alice@example.com", PASSWORD)
            client.sendmail("alice@example.com", ["jane@globex.com"], b"Subject: hi\r\n\r\nhello\r\n")

        # SIGHUP: a new member, without dropping a connection that is open meanwhile.
        open_connection = socket.create_connection((smtp.host, smtp.port))
        assert open_connection.recv(512).startswith(b"220")
        serve.config_path.write_text(serve.config_path.read_text() + '\n[[team.members]]\nlogin = "bob@example.com"\n')
        assert serve.process is not None
        serve.process.send_signal(signal.SIGHUP)
        log = tmp_path / "serve.log"
        deadline = time.monotonic() + 10
        while "reload: 2 members" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        open_connection.sendall(b"NOOP\r\n")
        assert open_connection.recv(512).startswith(b"250")
        open_connection.close()

        assert serve.stop() == 0
        text = log.read_text()
        payload = base64.b64encode(f"\0alice@example.com\0{PASSWORD}".encode()).decode()
        assert "Traceback" not in text and PASSWORD not in text and payload not in text
        assert "smtp" in text.lower()  # the log did say something about the session
    finally:
        upstream.close()


def test_a_port_in_use_is_one_clear_line(tmp_path: Path, certs: Certs) -> None:
    config = write_config(tmp_path, certs, {"alice@example.com": "pw"}, free_port(), None)
    text = config.read_text()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    config.write_text(text.replace('[web]\nlisten = "127.0.0.1:', f'[web]\nlisten = "127.0.0.1:{port}"\n#'))
    try:
        result = subprocess.run(serve_command(config), capture_output=True, text=True, timeout=30)
    finally:
        blocker.close()
    assert result.returncode == 1
    assert "web.listen" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_certificate_and_a_missing_upstream_are_named(tmp_path: Path, certs: Certs) -> None:
    config = write_config(tmp_path, certs, {"alice@example.com": "pw"}, free_port(), None)
    config.write_text(config.read_text().replace(str(certs.cert), str(tmp_path / "nope.pem")))
    result = subprocess.run(serve_command(config), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "tls.cert" in result.stderr and "Traceback" not in result.stderr

    bare = tmp_path / "bare.toml"
    bare.write_text('[storage]\ndatabase = "db.sqlite"\n')
    result = subprocess.run(serve_command(bare), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "imap.upstream" in result.stderr
