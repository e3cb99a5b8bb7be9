"""The web site: `create_app(settings, graph, login_check)` builds the Starlette application.

Pages (pages.py), the JSON API (api.py) and live updates (live.py) share one session
middleware (signed, HttpOnly, SameSite=Lax cookie; the key lives in `<database>.secret`) and
one security-headers middleware (a CSP with no inline script, nosniff, no framing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayproxy.config import Settings
from relayproxy.graph import Graph
from relayproxy.graph.views import Views
from relayproxy.web import api, csrf, live, mailbox_names, pages
from relayproxy.web.auth import Authenticator, LoginCheck, NotSignedIn, TooManyAttempts, session_secret

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SESSION_DAYS = 14


class SecurityHeaders:
    """Adds the CSP and friends to every HTTP response that does not set its own CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                headers.extend((n, v) for n, v in extra if n not in names)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/api/", "/events"))


async def not_signed_in(request: Request, exc: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"error": "Sign in first (a session, or HTTP Basic with your mail login)."},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="relayproxy"'},
        )
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


async def too_many(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TooManyAttempts)
    headers = {"Retry-After": str(exc.retry_after)}
    if _wants_json(request):
        return JSONResponse({"error": str(exc)}, status_code=429, headers=headers)
    context = {"error": str(exc), "username": "", "next": "/"}
    response = pages.render(request, "login.html", context, status=429)
    response.headers.update(headers)
    return response


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_json(request):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return pages.render(
        request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status=exc.status_code
    )


def templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.globals["csrf_token"] = csrf.token
    env.filters["mailbox"] = mailbox_names.readable
    return Jinja2Templates(env=env)


def create_app(
    settings: Settings, graph: Graph, login_check: LoginCheck, *, views: Views | None = None, history: Any = None,
    continuous: Any = None,
) -> Starlette:
    """The site for `graph`; `login_check(username, password)` verifies mail credentials;
    `history` (an imap.sync.HistorySync) lets members start their history sync, `continuous`
    (a continuous.ContinuousSync) opt in to continuous sync and out."""
    views = views or Views()
    broker = live.Broker(views)

    routes: list[Any] = [
        *pages.routes,
        *api.routes,
        Route("/events", live.events),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=session_secret(settings.storage.database),
            session_cookie="relayproxy_session",
            max_age=SESSION_DAYS * 86400,
            same_site="lax",
        ),
    ]
    handlers: dict[Any, Any] = {NotSignedIn: not_signed_in, TooManyAttempts: too_many, HTTPException: http_error}
    # Subscribed here, not in a lifespan: `relayproxy serve` mounts this app, and Starlette
    # does not run a mounted app's lifespan.
    graph.subscribe(broker.publish)
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.settings = settings
    app.state.graph = graph
    app.state.views = views
    app.state.auth = Authenticator(settings, login_check)
    app.state.templates = templates()
    app.state.broker = broker
    app.state.history = history
    app.state.continuous = continuous
    return app
