"""Sign-in: members only, CSRF, signed HttpOnly cookie, backoff, HTTP Basic for the API."""

from __future__ import annotations

import base64
import os
import stat

from starlette.applications import Starlette
from starlette.testclient import TestClient

from relayproxy import config
from tests.web.conftest import csrf_of, sign_in


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def test_pages_redirect_to_sign_in(client: TestClient) -> None:
    response = client.get("/people", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/people"


def test_login_form_has_the_contract_fields(client: TestClient) -> None:
    response = client.get("/login")
    assert response.template.name == "login.html"  # type: ignore[attr-defined]
    for field in ('name="username"', 'name="password"', 'name="csrf_token"'):
        assert field in response.text


def test_sign_in_sets_a_signed_httponly_lax_cookie(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "Alice@Example.com", "password": "alice-pw", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/people").template.name == "people.html"  # type: ignore[attr-defined]


def test_sign_in_without_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": "alice@example.com", "password": "alice-pw"})
    assert response.status_code == 403


def test_wrong_password_and_non_members_are_refused(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"username": "alice@example.com", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401
    assert "nope" not in wrong.text
    outsider = client.post("/login", data={"username": "eve@example.com", "password": "x", "csrf_token": token})
    assert outsider.status_code == 401


def test_repeated_failures_are_slowed_down(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    form = {"username": "alice@example.com", "password": "bad", "csrf_token": token}
    statuses = [client.post("/login", data=form).status_code for _ in range(4)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    right = client.post("/login", data={**form, "password": "alice-pw"})
    assert right.status_code == 429  # locked even with the right password, for a while
    assert int(right.headers["retry-after"]) >= 1


def test_logout_needs_csrf_and_ends_the_session(alice: TestClient) -> None:
    assert alice.post("/logout", data={}).status_code == 403
    token = csrf_of(alice.get("/").text)
    assert alice.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert alice.get("/people", follow_redirects=False).status_code == 303


def test_post_forms_need_the_session_csrf_token(alice: TestClient) -> None:
    response = alice.post("/settings/sharing", data={"level": "full", "csrf_token": "forged"})
    assert response.status_code == 403


def test_api_without_credentials_is_401_json(client: TestClient) -> None:
    response = client.get("/api/people")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert "error" in response.json()


def test_api_accepts_basic_credentials(client: TestClient) -> None:
    response = client.get("/api/people", headers=basic("bob@example.com", "bob-pw"))
    assert response.status_code == 200
    assert client.get("/api/people", headers=basic("bob@example.com", "wrong")).status_code == 401


def test_basic_results_are_cached_without_the_password(app: Starlette) -> None:
    calls: list[str] = []
    original = app.state.auth.login_check

    async def counting(username: str, password: str) -> bool:
        calls.append(username)
        return bool(await original(username, password))

    app.state.auth.login_check = counting
    client = TestClient(app)
    for _ in range(3):
        assert client.get("/api/people", headers=basic("bob@example.com", "bob-pw")).status_code == 200
    assert calls == ["bob@example.com"]
    assert all(b"bob-pw" not in key for key in app.state.auth._basic)


def test_session_secret_is_a_private_file_beside_the_database(settings: config.Settings, app: Starlette) -> None:
    secret = settings.storage.database.parent / (settings.storage.database.name + ".secret")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_security_headers_forbid_inline_script(alice: TestClient) -> None:
    csp = alice.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_sign_in_redirects_only_within_the_site(client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": "alice@example.com", "password": "alice-pw", "csrf_token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_sign_in_helper(app: Starlette) -> None:
    assert sign_in(TestClient(app), "carol@example.com").get("/").status_code == 200
