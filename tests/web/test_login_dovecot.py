"""Sign-in against the real upstream: the production login check asking the Dovecot fixture."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from relayproxy import config
from relayproxy.graph import Graph
from relayproxy.web.app import create_app
from relayproxy.web.auth import upstream_login_check
from tests.peers.dovecot import Dovecot
from tests.web.conftest import csrf_of


def test_members_sign_in_with_their_mail_password(dovecot: Dovecot, tmp_path: Path) -> None:
    login, password = dovecot.new_user("webuser")
    outsider, outsider_password = dovecot.new_user("outsider")
    path = tmp_path / "relayproxy.toml"
    path.write_text(f"""
[storage]
database = "{tmp_path}/relayproxy.db"
blobs = "{tmp_path}/blobs"
[imap]
upstream = "{dovecot.host}:{dovecot.port}"
upstream_security = "none"
[team]
domains = ["example.com"]
[[team.members]]
login = "{login}"
name = "Web User"
""")
    settings = config.load(path)
    graph = Graph(settings, durable=False)
    try:
        client = TestClient(create_app(settings, graph, upstream_login_check(settings)))

        def attempt(username: str, pw: str) -> int:
            token = csrf_of(client.get("/login").text)
            form = {"username": username, "password": pw, "csrf_token": token}
            return client.post("/login", data=form, follow_redirects=False).status_code

        assert attempt(login, "not-the-password") == 401
        assert attempt(outsider, outsider_password) == 401  # a good mailbox, but not a team member
        assert attempt(login, password) == 303
        assert client.get("/people").status_code == 200
    finally:
        graph.close()
