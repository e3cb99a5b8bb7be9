"""A throwaway certificate authority and a localhost certificate (demo and tests)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate clients and the proxy trust
    cert: Path  # a certificate for localhost and 127.0.0.1 signed by that CA
    key: Path


def make_certs(folder: Path) -> Certs:
    """Create a CA and a localhost certificate in `folder` with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    run = lambda *args: subprocess.run(args, cwd=folder, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
        "-subj", "/CN=relayproxy test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "key.pem", "-out", "cert.csr")
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-out", "cert.pem", "-extfile", "ext.cnf")
    return Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
