"""The JSON API under /api/: the DESIGN.md shapes, as the signed-in member may see them.

Errors are JSON too (`{"error": "..."}`) with 401, 403, 404 or 422; the app's exception
handlers turn `HTTPException`s raised here into that shape.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relayproxy.graph import merge, views
from relayproxy.graph.strength import DEGREES
from relayproxy.web.access import int_param, read, viewer


def _page(request: Request) -> dict[str, Any]:
    params = request.query_params
    try:
        limit = int_param(request, "limit", 50, 1, 1000)
        offset = int_param(request, "offset", 0, 0, 10_000_000)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    sort = params.get("sort") or "strength"
    if sort not in views.SORTS:
        raise HTTPException(422, f"sort must be one of {', '.join(views.SORTS)}.")
    degree = params.get("degree", "")
    if degree and degree not in DEGREES:
        raise HTTPException(422, f"degree must be one of {', '.join(DEGREES)}.")
    return {
        "q": params.get("q", "")[:200],
        "sort": sort,
        "degree": degree,
        "member": params.get("member", ""),
        "limit": limit,
        "offset": offset,
    }


async def people(request: Request) -> Response:
    who = await viewer(request)
    page = _page(request)
    index: views.Views = request.app.state.views
    items, total = await read(request, lambda conn: index.people(conn, who, **page))
    return JSONResponse({"items": items, "total": total})


async def person(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    found = await read(request, lambda conn: index.person(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such person, or not one you may see.")
    return JSONResponse(found)


async def companies(request: Request) -> Response:
    who = await viewer(request)
    page = _page(request)
    index: views.Views = request.app.state.views
    items = await read(request, lambda conn: index.companies(conn, who, q=page["q"]))
    window = items[page["offset"] : page["offset"] + page["limit"]]
    return JSONResponse({"items": window, "total": len(items)})


async def company(request: Request) -> Response:
    who = await viewer(request)
    index: views.Views = request.app.state.views
    found = await read(request, lambda conn: index.company(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such company, or not one you may see.")
    return JSONResponse(found)


async def message(request: Request) -> Response:
    who = await viewer(request)
    found = await read(request, lambda conn: views.Views.message(conn, who, request.path_params["id"]))
    if found is None:
        raise HTTPException(404, "No such message, or not one you may see.")
    return JSONResponse(found)


async def merge_people(request: Request) -> Response:
    """`POST /api/people/{id}/merge` with `{"other": id or address}` (JSON only: no form CSRF)."""
    who = await viewer(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(422, "Send the request body as application/json.")
    body = await request.json()
    other = str(body.get("other", "")) if isinstance(body, dict) else ""
    keep = request.path_params["id"]
    index: views.Views = request.app.state.views
    target = await read(request, lambda conn: index.resolve_person(conn, who, other))
    if target is None or await read(request, lambda conn: index.person(conn, who, keep)) is None:
        raise HTTPException(404, "No such person to merge, or not one you may see.")
    try:
        await request.app.state.graph.store.write(lambda conn: merge.merge_people(conn, keep, target))
    except merge.MergeError as exc:
        raise HTTPException(422, str(exc)) from None
    found = await read(request, lambda conn: index.person(conn, who, keep))
    return JSONResponse(found)


routes = [
    Route("/api/people", people),
    Route("/api/people/{id:int}", person),
    Route("/api/people/{id:int}/merge", merge_people, methods=["POST"]),
    Route("/api/companies", companies),
    Route("/api/companies/{id:int}", company),
    Route("/api/messages/{id:int}", message),
]
