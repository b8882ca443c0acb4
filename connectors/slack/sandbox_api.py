"""The fake Slack's Web API methods: what each answers for a token and its arguments.

Each function takes the state, the workspace the token belongs to and the call's arguments and
returns (status, headers, body). Error codes and response fields are those of the method
reference pages (https://docs.slack.dev/reference/methods/<method>).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from connectors.slack.sandbox_state import (
    TEXT_LIMIT,
    ApiAnswer,
    Channel,
    Posted,
    SlackState,
    Workspace,
)

Method = Callable[[SlackState, Workspace, dict[str, Any], str], ApiAnswer]


def _ok(body: dict[str, Any]) -> ApiAnswer:
    return 200, {}, {"ok": True, **body}


def _error(code: str, **extra: Any) -> ApiAnswer:
    return 200, {}, {"ok": False, "error": code, **extra}


def _needs(ws: Workspace, scope: str) -> ApiAnswer | None:
    if scope in ws.scopes:
        return None
    return _error("missing_scope", needed=scope, provided=",".join(ws.scopes))


def auth_test(state: SlackState, ws: Workspace, params: dict[str, Any], base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/auth.test (a bot token's answer)."""
    return _ok({"url": f"https://{ws.domain}.slack.com/", "team": ws.team_name,
                "user": ws.bot_name, "team_id": ws.team_id, "user_id": ws.bot_user_id,
                "bot_id": ws.bot_id, "is_enterprise_install": False})


def bots_info(state: SlackState, ws: Workspace, params: dict[str, Any], base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/bots.info"""
    if (missing := _needs(ws, "users:read")) is not None:
        return missing
    if params.get("bot") != ws.bot_id:
        return _error("bot_not_found")
    return _ok({"bot": {"id": ws.bot_id, "deleted": False, "name": ws.bot_name,
                        "updated": 1610000000, "app_id": ws.app_id, "user_id": ws.bot_user_id,
                        "icons": {"image_36": "https://a.slack-edge.com/bot_36.png",
                                  "image_48": "https://a.slack-edge.com/bot_48.png",
                                  "image_72": "https://a.slack-edge.com/bot_72.png"}}})


def post_message(state: SlackState, ws: Workspace, params: dict[str, Any],
                 base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/chat.postMessage: `username` / `icon_url`
    need chat:write.customize; the bot must be in the channel; 40,000 characters at most."""
    if (missing := _needs(ws, "chat:write")) is not None:
        return missing
    channel = state.channels.get(str(params.get("channel") or ""))
    if channel is None or channel.team_id != ws.team_id:
        return _error("channel_not_found")
    if channel.archived:
        return _error("is_archived")
    if ws.bot_user_id not in channel.members:
        return _error("not_in_channel")
    text = str(params.get("text") or "")
    if not text and not params.get("blocks"):
        return _error("no_text")
    if len(text) > TEXT_LIMIT:
        return _error("msg_too_long")
    username, icon_url = params.get("username"), params.get("icon_url")
    if (username or icon_url) and (missing := _needs(ws, "chat:write.customize")) is not None:
        return missing
    thread_ts = params.get("thread_ts") or None
    posted = Posted(channel=channel.id, ts=state.next_ts(), text=text,
                    thread_ts=str(thread_ts) if thread_ts else None,
                    username=str(username) if username else None,
                    icon_url=str(icon_url) if icon_url else None, params=dict(params))
    state.posted.append(posted)
    message: dict[str, Any] = {"type": "message", "text": text, "user": ws.bot_user_id,
                               "bot_id": ws.bot_id, "app_id": ws.app_id, "ts": posted.ts,
                               "team": ws.team_id}
    if posted.username:
        message.update(subtype="bot_message", username=posted.username)
    if posted.icon_url:
        message["icons"] = {"image_48": posted.icon_url}
    if posted.thread_ts:
        message["thread_ts"] = posted.thread_ts
    return _ok({"channel": channel.id, "ts": posted.ts, "message": message})


def users_info(state: SlackState, ws: Workspace, params: dict[str, Any], base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/users.info (`locale` only with include_locale)."""
    if (missing := _needs(ws, "users:read")) is not None:
        return missing
    user = state.users.get(str(params.get("user") or ""))
    if user is None:
        return _error("user_not_found")
    include_locale = str(params.get("include_locale")).lower() in ("1", "true")
    return _ok({"user": user.as_api(include_locale)})


def conversations_info(state: SlackState, ws: Workspace, params: dict[str, Any],
                       base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/conversations.info"""
    channel = state.channels.get(str(params.get("channel") or ""))
    if channel is None or channel.team_id != ws.team_id:
        return _error("channel_not_found")
    return _ok({"channel": channel.as_api(ws.bot_user_id)})


def conversations_open(state: SlackState, ws: Workspace, params: dict[str, Any],
                       base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/conversations.open: the bot's DM with a user."""
    if (missing := _needs(ws, "im:write")) is not None:
        return missing
    user = str(params.get("users") or "")
    if user not in state.users:
        return _error("user_not_found")
    for channel in state.channels.values():
        if channel.kind == "im" and channel.user == user and channel.team_id == ws.team_id:
            return _ok({"channel": {"id": channel.id}})
    channel = Channel(id=state.new_id("D"), team_id=ws.team_id, name=user, kind="im",
                      members={user, ws.bot_user_id}, user=user)
    state.channels[channel.id] = channel
    return _ok({"channel": {"id": channel.id}})


def connections_open(state: SlackState, ws: Workspace, params: dict[str, Any],
                     base: str) -> ApiAnswer:
    """https://docs.slack.dev/reference/methods/apps.connections.open: app-level tokens only;
    the URL is good for one connection (here: our local websocket)."""
    ws_base = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return _ok({"url": f"{ws_base}/link/?ticket={uuid.uuid4()}&app_id={ws.app_id}"})


METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "bots.info": bots_info,
    "chat.postMessage": post_message,
    "users.info": users_info,
    "conversations.info": conversations_info,
    "conversations.open": conversations_open,
    "apps.connections.open": connections_open,
}
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


def call(state: SlackState, method: str, token: str | None, params: dict[str, Any],
         base: str) -> ApiAnswer:
    """Authenticate the token for the method, then run it (or an injected failure)."""
    state.calls.append((method, dict(params)))
    failure = state.take_failure(method)
    if failure is not None:
        return failure.answer()
    if method not in METHODS:
        return 200, {}, {"ok": False, "error": "unknown_method"}
    if not token:
        return _error("not_authed")
    ws = state.workspace_for(token)
    if ws is None:
        return _error("invalid_auth")
    if ws.revoked:
        return _error("token_revoked")
    if ws.inactive:
        return _error("account_inactive")
    app_level = token == ws.app_token
    if app_level != (method in APP_TOKEN_METHODS):
        return _error("not_allowed_token_type")
    status, headers, body = METHODS[method](state, ws, params, base)
    if not app_level:
        headers = {**headers, "x-oauth-scopes": ",".join(ws.scopes),
                   "x-accepted-oauth-scopes": ""}
    return status, headers, body
