"""The web sign-in's credential check, against the real Dovecot."""

from __future__ import annotations

import pytest

from relayproxy.imap.login import UpstreamUnavailable, check_login
from tests.imap.peers import proxy_settings
from tests.peers.dovecot import Dovecot
from tests.peers.ports import refused_port


@pytest.mark.parametrize("security", ["tls", "starttls", "none"])
async def test_check_login_accepts_the_right_password_only(dovecot: Dovecot, security: str) -> None:
    login, password = dovecot.new_user()
    dovecot.add_user(login, password + ' "quoted" ünï')  # any character a password may hold
    password += ' "quoted" ünï'
    port = dovecot.tls_port if security == "tls" else dovecot.port
    settings = proxy_settings(f"localhost:{port}", security, ca=dovecot.ca)
    assert await check_login(settings, login, password)
    assert not await check_login(settings, login, "wrong")
    assert not await check_login(settings, "nobody@example.com", password)


async def test_check_login_says_why_the_server_is_unreachable(dovecot: Dovecot) -> None:
    with refused_port() as port, pytest.raises(UpstreamUnavailable, match="refused the connection"):
        await check_login(proxy_settings(f"127.0.0.1:{port}", "none"), "a", "b")
    # A server whose certificate is not trusted (no upstream_ca) is not talked to.
    untrusted = proxy_settings(f"localhost:{dovecot.tls_port}", "tls")
    with pytest.raises(UpstreamUnavailable, match="certificate"):
        await check_login(untrusted, "a", "b")
