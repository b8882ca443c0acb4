"""The server-rendered UI: Jinja2 pages (autoescaped), static files, the language switch.

Pages read through the same store and services as the JSON API; state changes from pages are
forms carrying the session's CSRF token, or `fetch` calls to the API with `X-CSRF-Token`.
JavaScript (static/app.js) only adds live updates and the reply box; it writes customer text
with `textContent`, never as HTML.
"""

from __future__ import annotations

from aiohttp import web

from connectors.registry import CONNECTORS
from inbox.store import UNASSIGNED, NotFound
from web import events, login, ui_admin, ui_canned, ui_reports, ui_teams
from web.csrf import check_form_csrf, cookie_secure
from web.errors import ApiError
from web.i18n import LANG_COOKIE, normalise_locale
from web.pages import ENV_KEY, STATIC_DIR, Handler, form, make_env, page, render, safe_next
from web.views import conversation_json, message_json

STATUS_FILTERS = ("open", "pending", "resolved", "all")
WHO_FILTERS = ("", "mine", "unassigned")
PAGE_SIZE = 50


def platform_names() -> list[str]:
    return sorted(CONNECTORS)


# ---------------------------------------------------------------------- inbox


@page()
async def inbox(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    q = request.query
    status = q.get("status", "open")
    status = status if status in STATUS_FILTERS else "open"
    channel = q.get("channel", "")
    channel = channel if channel in CONNECTORS else ""
    who = q.get("who", "")
    who = who if who in WHO_FILTERS else ""
    me = str(request["agent"]["_id"])
    assignee = {"mine": me, "unassigned": UNASSIGNED}.get(who)
    sort = "sla" if q.get("sort") == "sla" else ""
    since = await events.hub_of(request.app).mark()
    try:
        if sort:  # breaching soonest: running SLA clocks by due time (web/api_measures.py)
            from web.api_measures import breaching_soonest

            docs, next_cursor = await breaching_soonest(
                request, status=None if status == "all" else status, platform=channel or None,
                assignee=assignee, limit=PAGE_SIZE, cursor=q.get("cursor") or None)
        else:
            docs, next_cursor = await services.store.list_conversations(
                status=None if status == "all" else status, platform=channel or None,
                assignee=assignee, limit=PAGE_SIZE, cursor=q.get("cursor") or None)
    except (ValueError, ApiError):
        raise web.HTTPFound("/") from None
    contacts = await services.store.contacts_by_id([d.get("contact_id") for d in docs])
    slas = await services.measures.sla_of([str(d["_id"]) for d in docs])
    rows = [conversation_json(d, contacts.get(d.get("contact_id") or ""))
            | {"sla": slas.get(str(d["_id"]))} for d in docs]
    accounts = {str(a["_id"]): a["name"] for a in await services.store.list_accounts()}
    filters = {"status": status, "channel": channel, "who": who, "sort": sort}
    return render(request, "inbox.html", rows=rows, accounts=accounts, filters=filters,
                  sla_left=ui_reports.sla_left,
                  next_cursor=next_cursor, since=since or "", me=me,
                  statuses=STATUS_FILTERS, platforms=platform_names(),
                  first_page=not q.get("cursor"), query=_filter_query)


def _filter_query(filters: dict[str, str], **changes: str) -> str:
    from urllib.parse import urlencode

    merged = {**filters, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v})


# ---------------------------------------------------------------------- conversation


@page()
async def conversation(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    conv_id = request.match_info["id"]
    since = await events.hub_of(request.app).mark()
    doc = await services.store.mark_read(conv_id)
    contacts = await services.store.contacts_by_id([doc.get("contact_id")])
    conv = conversation_json(doc, contacts.get(doc.get("contact_id") or ""))
    msgs, older = await services.store.list_messages(
        conv_id, limit=PAGE_SIZE, cursor=request.query.get("before") or None)
    messages = [message_json(m) for m in reversed(msgs)]
    try:
        account = await services.store.get_account(doc["account_id"])
    except NotFound:
        account = None
    everyone = await services.agents.list()
    agents = [a for a in everyone if a.get("active")]
    names = {str(a["_id"]): a["display_name"] for a in everyone}
    agent = request["agent"]
    # the first count before GET …/compose answers with the connector's own measure
    compose = {
        "identity": f"{agent['display_name']} · {services.settings.identity.brand}",
        "text_limit": getattr(CONNECTORS.get(doc["platform"]), "text_limit", None),
    }
    side = await ui_teams.side_panel(services, doc)
    conv["sla"] = (await services.measures.sla_of([conv_id])).get(conv_id)
    return render(request, "conversation.html", conv=conv, messages=messages,
                  older=older, account=account, agents=agents, names=names,
                  compose=compose, since=since or "", me=str(agent["_id"]), side=side)


@page()
async def conversation_status(request: web.Request) -> web.StreamResponse:
    data = await form(request)
    status = data.get("status", "")
    if status not in ("open", "pending", "resolved"):
        raise ApiError(400, "validation", "status: open, pending or resolved")
    conv_id = request.match_info["id"]
    from web.api_conversation import set_status  # the assignee's counter and queue follow

    await set_status(request, conv_id, status, {"status": status})
    raise web.HTTPFound(f"/conversations/{conv_id}")


@page()
async def conversation_assign(request: web.Request) -> web.StreamResponse:
    services = request.app["services"]
    data = await form(request)
    target = data.get("assignee_id", "")
    conv_id = request.match_info["id"]
    if target == "me":
        assignee: str | None = str(request["agent"]["_id"])
    elif target in ("", "none"):
        assignee = None
    else:
        found = await services.agents.get(target)
        if not found.get("active"):
            raise ApiError(400, "validation", "assignee_id: this agent is deactivated")
        assignee = str(found["_id"])
    await services.teams.assigner.set_assignee(conv_id, assignee,
                                               by=str(request["agent"]["_id"]))
    raise web.HTTPFound(f"/conversations/{conv_id}")


# ---------------------------------------------------------------------- language


async def switch_language(request: web.Request) -> web.StreamResponse:
    """The language switch: a cookie (sticks for the browser) and the agent's own setting."""
    data = await request.post()
    check_form_csrf(request, str(data.get("csrf", "")))
    locale = normalise_locale(str(data.get("locale", ""))) or "en"
    response = web.HTTPFound(safe_next(str(data.get("next", "/"))))
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="Lax",
                        httponly=True, path="/", secure=cookie_secure(request))
    agent = request["agent"]
    if agent is not None and request.get("via") == "session":
        await request.app["services"].agents.update(str(agent["_id"]), {"locale": locale})
    raise response


@web.middleware
async def html_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown pages get the UI's 404 page; API and webhook paths keep their JSON errors."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if request.path.startswith(("/api/", "/webhooks/", "/static/")) or \
                request.method != "GET":
            raise
        return render(request, "error.html", status=404, code=404,
                      message_key="error.not_found")


def setup(app: web.Application) -> None:
    app[ENV_KEY] = make_env()
    app.middlewares.append(html_not_found)
    login.setup(app)
    events.setup(app)
    app.router.add_get("/", inbox)
    app.router.add_get("/conversations/{id}", conversation)
    app.router.add_post("/conversations/{id}/status", conversation_status)
    app.router.add_post("/conversations/{id}/assign", conversation_assign)
    app.router.add_post("/locale", switch_language)
    ui_admin.setup(app)
    ui_teams.setup(app)
    ui_canned.setup(app)
    ui_reports.setup(app)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
