"""The HTML pages: each endpoint reads what it shows through `graph.views`, then renders.

Visibility is decided in `relayproxy.graph.visibility`; templates only show what they get.
Every POST checks the form's CSRF token and answers with a redirect (303) to a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from relayproxy.graph import enrich_store, merge, settings, sync_state, views
from relayproxy.graph.ingest import iso
from relayproxy.graph.strength import DEGREES
from relayproxy.graph.visibility import LEVELS, at_least
from relayproxy.sealing import SyncKeyError
from relayproxy.web import csrf
from relayproxy.web.access import int_param, read, viewer
from relayproxy.web.auth import Authenticator, client_address
from relayproxy.web.export import to_csv

PAGE_SIZE = 50
SAFE_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"}


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@dataclass(frozen=True)
class PeopleQuery:
    """The people list's parameters, checked (ValueError names a bad one)."""

    q: str
    sort: str
    degree: str
    member: str
    page: int

    @classmethod
    def of(cls, request: Request) -> PeopleQuery:
        params = request.query_params
        sort = params.get("sort") or "strength"
        degree = params.get("degree", "")
        if sort not in views.SORTS:
            raise ValueError(f"sort must be one of {', '.join(views.SORTS)}.")
        if degree and degree not in DEGREES:
            raise ValueError(f"degree must be one of {', '.join(DEGREES)}.")
        page = int_param(request, "page", 1, 1, 100_000)
        return cls(params.get("q", "")[:200], sort, degree, params.get("member", ""), page)

    def link(self, **changes: Any) -> str:
        values = {"q": self.q, "sort": self.sort, "degree": self.degree, "member": self.member, "page": self.page}
        values.update(changes)
        return "/people?" + "&".join(f"{k}={quote(str(v))}" for k, v in values.items() if v not in ("", None))


def checked(query: type[PeopleQuery], request: Request) -> PeopleQuery:
    try:
        return query.of(request)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


# --- sign-in ---------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    return render(request, "login.html", {"error": None, "username": "", "next": request.query_params.get("next", "/")})


async def login(request: Request) -> Response:
    form = await csrf.checked_form(request)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = str(form.get("next", "/"))
    authenticator: Authenticator = request.app.state.auth
    member = await authenticator.sign_in(username, password, client_address(request))
    if member is None:
        context = {
            "error": "Wrong address or password, or not a member of this team.",
            "username": username,
            "next": target,
        }
        return render(request, "login.html", context, status=401)
    request.session.clear()
    request.session["login"] = member
    csrf.rotate(request)
    return see_other(target if target.startswith("/") and not target.startswith("//") else "/")


async def logout(request: Request) -> Response:
    await csrf.checked_form(request)
    request.session.clear()
    return see_other("/login")


# --- reading ---------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    who = await viewer(request)
    latest = await read(request, lambda conn: views.Views.latest(conn, who))
    return render(request, "home.html", {"messages": latest})


async def people(request: Request) -> Response:
    who = await viewer(request)
    query = checked(PeopleQuery, request)
    index: views.Views = request.app.state.views
    items, total = await read(
        request,
        lambda conn: index.people(
            conn,
            who,
            q=query.q,
            sort=query.sort,
            degree=query.degree,
            member=query.member,
            limit=PAGE_SIZE,
            offset=(query.page - 1) * PAGE_SIZE,
        ),
    )
    members = await read(request, views.members)
    pages = max(1, -(-total // PAGE_SIZE))
    context = {
        "people": items,
        "total": total,
        "query": query,
        "pages": pages,
        "members": members,
        "degrees": DEGREES,
        "sorts": views.SORTS,
    }
    return render(request, "people.html", context)


async def person(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    found = await read(request, lambda conn: index.person(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such person, or not one you may see.")
    return render(request, "person.html", {"person": found})


async def companies(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    q = request.query_params.get("q", "")[:200]
    items = await read(request, lambda conn: index.companies(conn, who, q=q))
    return render(request, "companies.html", {"companies": items, "q": q})


async def company(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    found = await read(request, lambda conn: index.company(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such company, or not one you may see.")
    return render(request, "company.html", {"company": found})


async def message(request: Request) -> Response:
    who = await viewer(request)
    found = await read(request, lambda conn: views.Views.message(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such message, or not one you may see.")
    return render(request, "message.html", {"message": found})


async def attachment(request: Request) -> Response:
    """Attachment download: visibility checked on every request; never rendered inline."""
    who = await viewer(request)
    mid, aid = request.path_params["id"], request.path_params["attachment"]
    level, row = await read(request, lambda conn: views.Views.attachment(conn, who, mid, aid))
    if row is None or level is None:
        raise HTTPException(404, "No such attachment, or not one you may see.")
    if not at_least(level, "full"):
        raise HTTPException(403, "The member who holds this message does not share attachments with you.")
    try:
        content = request.app.state.graph.blobs.get(row["sha256"])
    except (OSError, ValueError):
        raise HTTPException(404, "The attachment's content is missing from the store.") from None
    kind = row["content_type"].split(";")[0].strip().lower()
    media = kind if kind in SAFE_TYPES else "application/octet-stream"
    filename = quote(row["filename"] or f"attachment-{aid}", safe="")
    headers = {
        "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, no-store",
    }
    return Response(content, media_type=media, headers=headers)


async def people_csv(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    items = await read(request, lambda conn: index.all_people(conn, who))
    return csv_response(to_csv("people", items), "people.csv")


async def companies_csv(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    items = await read(request, lambda conn: index.companies(conn, who))
    return csv_response(to_csv("companies", sorted(items, key=lambda c: c["id"])), "companies.csv")


def csv_response(text: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


# --- changing --------------------------------------------------------------------------------


async def write(request: Request, fn: Any) -> Any:
    try:
        return await request.app.state.graph.store.write(fn)
    except (settings.SettingError, merge.MergeError, enrich_store.OverrideError) as exc:
        raise HTTPException(422, str(exc)) from None


async def settings_page(request: Request) -> Response:
    who = await viewer(request)
    mine = await read(request, lambda conn: views.settings_of(conn, who))
    members = [m for m in await read(request, views.members) if m["id"] != who.id]
    history = request.app.state.history
    sync = {
        "available": history is not None,
        "running": history is not None and history.running(who.login),
        "mailboxes": await read(request, lambda conn: sync_state.for_member(conn, who.login)),
    }
    continuous = request.app.state.continuous
    watch = await continuous.status(who.login) if continuous is not None else None
    context = {"settings": mine, "members": members, "levels": LEVELS, "sync": sync, "watch": watch}
    return render(request, "settings.html", context)


async def start_sync(request: Request) -> Response:
    """Fetch the member's history from the mail server now; the password is used, never kept."""
    who = await viewer(request)
    form = await csrf.checked_form(request)
    history = request.app.state.history
    if history is None:
        raise HTTPException(404, "History sync is not available here.")
    password = str(form.get("password", ""))
    if not await request.app.state.auth.login_check(who.login, password):
        raise HTTPException(422, "The mail server did not accept that password.")
    history.start(who.login, who.login, password)
    return see_other("/settings")


async def continuous_on(request: Request) -> Response:
    """Opt in to continuous sync: the checked password is stored sealed and IDLE watchers start."""
    who = await viewer(request)
    form = await csrf.checked_form(request)
    continuous = request.app.state.continuous
    if continuous is None:
        raise HTTPException(404, "Continuous sync is not available here.")
    password = str(form.get("password", ""))
    if not await request.app.state.auth.login_check(who.login, password):
        raise HTTPException(422, "The mail server did not accept that password.")
    try:
        await continuous.opt_in(who.login, who.login, password)
    except SyncKeyError as exc:
        raise HTTPException(422, f"Continuous sync cannot be turned on: {exc}") from None
    return see_other("/settings")


async def continuous_off(request: Request) -> Response:
    """Opt out: the stored credential is deleted and the watchers stop."""
    who = await viewer(request)
    await csrf.checked_form(request)
    continuous = request.app.state.continuous
    if continuous is None:
        raise HTTPException(404, "Continuous sync is not available here.")
    await continuous.opt_out(who.login)
    return see_other("/settings")


async def set_sharing(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    await write(request, lambda conn: settings.set_sharing(conn, who.id, str(form.get("level", ""))))
    return see_other("/settings")


async def set_exception(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    member, level = str(form.get("member", "")), str(form.get("level", "")) or None
    await write(request, lambda conn: settings.set_exception(conn, who.id, member, level))
    return see_other("/settings")


async def add_exclusion(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    pattern, now = str(form.get("pattern", "")), iso(views.now_utc())
    await write(request, lambda conn: settings.add_exclusion(conn, who.id, pattern, now))
    return see_other("/settings")


async def remove_exclusion(request: Request) -> Response:
    await viewer(request)
    form = await csrf.checked_form(request)
    await write(request, lambda conn: settings.remove_exclusion(conn, str(form.get("pattern", ""))))
    return see_other("/settings")


async def person_private(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    pid, private = request.path_params["id"], form.get("private") == "1"
    if not await write(request, lambda conn: settings.mark_person_private(conn, who.id, pid, private)):
        raise HTTPException(404, "No such person.")
    return see_other(f"/people/{pid}")


async def message_private(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    mid, private = request.path_params["id"], form.get("private") == "1"
    if not await write(request, lambda conn: settings.mark_message_private(conn, who.id, mid, private)):
        raise HTTPException(403, "Only a member who holds a copy of this message can mark it private.")
    return see_other(f"/messages/{mid}")


async def merge_people(request: Request) -> Response:
    who = await viewer(request)
    form = await csrf.checked_form(request)
    keep, other = request.path_params["id"], str(form.get("other", "")).strip()
    index: views.Views = request.app.state.views
    target = await read(request, lambda conn: index.resolve_person(conn, who, other))
    if target is None or await read(request, lambda conn: index.person(conn, who, keep)) is None:
        raise HTTPException(404, "No such person to merge, or not one you may see.")
    await write(request, lambda conn: merge.merge_people(conn, keep, target))
    return see_other(f"/people/{keep}")


async def correct_enrichment(request: Request) -> Response:
    """Override (or, with `clear`, drop the override of) one enriched field of a person or company."""
    who = await viewer(request)
    form = await csrf.checked_form(request)
    kind = "person" if request.url.path.startswith("/people/") else "company"
    entity, field = request.path_params["id"], str(form.get("field", ""))
    index: views.Views = request.app.state.views
    shown = index.person if kind == "person" else index.company
    if await read(request, lambda conn: shown(conn, who, entity)) is None:
        raise HTTPException(404, f"No such {kind}, or not one you may see.")
    if form.get("clear"):
        await write(request, lambda conn: enrich_store.clear_override(conn, kind, entity, field))
    else:
        value, now = str(form.get("value", "")), iso(views.now_utc())
        await write(request, lambda conn: enrich_store.set_override(
            conn, kind, entity, field, value, member_id=who.id, now=now))
    return see_other(f"/{'people' if kind == 'person' else 'companies'}/{entity}")


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/", home),
    Route("/people", people),
    Route("/people.csv", people_csv),
    Route("/people/{id:int}", person),
    Route("/people/{id:int}/private", person_private, methods=["POST"]),
    Route("/people/{id:int}/merge", merge_people, methods=["POST"]),
    Route("/companies", companies),
    Route("/companies.csv", companies_csv),
    Route("/companies/{id:int}", company),
    Route("/people/{id:int}/enrichment", correct_enrichment, methods=["POST"]),  # issue 8
    Route("/companies/{id:int}/enrichment", correct_enrichment, methods=["POST"]),
    Route("/messages/{id:int}", message),
    Route("/messages/{id:int}/private", message_private, methods=["POST"]),
    Route("/messages/{id:int}/attachments/{attachment:int}", attachment),
    Route("/settings", settings_page),
    Route("/settings/sharing", set_sharing, methods=["POST"]),
    Route("/settings/sync", start_sync, methods=["POST"]),
    Route("/settings/continuous", continuous_on, methods=["POST"]),
    Route("/settings/continuous/off", continuous_off, methods=["POST"]),
    Route("/settings/exceptions", set_exception, methods=["POST"]),
    Route("/settings/exclusions", add_exclusion, methods=["POST"]),
    Route("/settings/exclusions/remove", remove_exclusion, methods=["POST"]),
]
