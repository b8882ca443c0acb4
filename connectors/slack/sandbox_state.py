"""The fake Slack's state: workspaces, people, channels, files, what was posted, injected
failures, and the Events API payloads a customer's activity produces.

Shapes follow Slack's Web API reference (https://docs.slack.dev/reference/methods/) and the
Events API payloads recorded in tests/fixtures/slack/inbound: an error is HTTP 200 with
`{"ok": false, "error": "<code>"}`, a rate limit is HTTP 429 with `Retry-After` and
`{"ok": false, "error": "ratelimited"}`, every answer to a bot token carries `x-oauth-scopes`.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ApiAnswer = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or a str for HTML)
TEXT_LIMIT = 40_000  # past this chat.postMessage answers msg_too_long


@dataclass
class Workspace:
    team_id: str
    team_name: str
    domain: str
    bot_token: str
    signing_secret: str
    bot_user_id: str = "U0BOT"
    bot_id: str = "B0BOT"
    app_id: str = "A0APP"
    bot_name: str = "switchboard"
    app_token: str | None = None
    scopes: list[str] = field(default_factory=lambda: [
        "chat:write", "chat:write.customize", "users:read", "channels:history", "im:history",
        "groups:history", "mpim:history", "files:read", "reactions:read", "app_mentions:read",
        "im:write"])
    events_url: str | None = None
    revoked: bool = False
    inactive: bool = False


@dataclass
class User:
    id: str
    team_id: str
    name: str
    real_name: str = ""
    display_name: str = ""
    locale: str = "en-US"
    tz: str = "Asia/Shanghai"
    image_72: str | None = None
    is_bot: bool = False

    def as_api(self, include_locale: bool) -> dict[str, Any]:
        """https://docs.slack.dev/reference/objects/user-object/"""
        image = self.image_72 or f"https://avatars.slack-edge.com/sandbox/{self.id}_72.png"
        doc: dict[str, Any] = {
            "id": self.id, "team_id": self.team_id, "name": self.name, "deleted": False,
            "real_name": self.real_name or self.name, "tz": self.tz, "is_bot": self.is_bot,
            "updated": 1610000000, "profile": {
                "real_name": self.real_name or self.name, "display_name": self.display_name,
                "real_name_normalized": self.real_name or self.name,
                "display_name_normalized": self.display_name, "image_72": image,
                "image_192": image.replace("_72.", "_192."), "team": self.team_id}}
        if include_locale:
            doc["locale"] = self.locale
        return doc


@dataclass
class Channel:
    id: str
    team_id: str
    name: str
    kind: str = "channel"  # im, channel, group (private channel), mpim
    members: set[str] = field(default_factory=set)
    archived: bool = False
    shared: bool = False  # a Slack Connect channel
    user: str | None = None  # the other side of an im

    def as_api(self, viewer: str) -> dict[str, Any]:
        """https://docs.slack.dev/reference/objects/conversation-object/"""
        doc: dict[str, Any] = {
            "id": self.id, "name": self.name, "created": 1610000000,
            "is_channel": self.kind == "channel", "is_group": self.kind == "group",
            "is_im": self.kind == "im", "is_mpim": self.kind == "mpim",
            "is_private": self.kind != "channel", "is_archived": self.archived,
            "is_member": viewer in self.members, "is_ext_shared": self.shared,
            "is_shared": self.shared}
        if self.user:
            doc["user"] = self.user
        return doc


@dataclass
class SandboxFile:
    id: str
    team_id: str
    name: str
    mime: str
    data: bytes
    user: str


@dataclass
class Posted:
    """One chat.postMessage as Slack received it."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None
    username: str | None
    icon_url: str | None
    params: dict[str, Any]

    def as_doc(self) -> dict[str, Any]:
        return {"channel": self.channel, "ts": self.ts, "text": self.text,
                "thread_ts": self.thread_ts, "username": self.username,
                "icon_url": self.icon_url, "params": self.params}


@dataclass
class Failure:
    method: str  # an API method name, or "*"
    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    times: int = 1
    drop: bool = False  # close the connection without answering

    def answer(self) -> ApiAnswer:
        headers: dict[str, str] = {}
        if self.status == 429 or self.error in ("ratelimited", "rate_limited"):
            headers["Retry-After"] = str(int(self.retry_after if self.retry_after is not None
                                             else 1))
            return (self.status if self.status != 200 else 429, headers,
                    {"ok": False, "error": self.error or "ratelimited"})
        if self.status >= 500:
            return (self.status, {},
                    f"<html><body><h1>{self.status} Service Unavailable</h1></body></html>")
        return self.status, headers, {"ok": False, "error": self.error or "unknown_error"}


class SlackState:
    def __init__(self) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.files: dict[str, SandboxFile] = {}
        self.posted: list[Posted] = []
        self.failures: list[Failure] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._seq = itertools.count(1)
        self._last_ts = 0.0

    # ------------------------------------------------------------------ set-up

    def workspace_for(self, token: str | None) -> Workspace | None:
        for ws in self.workspaces.values():
            if token and token in (ws.bot_token, ws.app_token):
                return ws
        return None

    def next_ts(self) -> str:
        """Slack ts values are unique per channel and increase; ours are unique overall."""
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def new_id(self, prefix: str) -> str:
        return f"{prefix}0SBX{next(self._seq):05d}"

    def take_failure(self, method: str) -> Failure | None:
        for failure in self.failures:
            if failure.method in (method, "*") and failure.times > 0:
                failure.times -= 1
                if failure.times == 0:
                    self.failures.remove(failure)
                return failure
        return None

    # ------------------------------------------------------------------ events

    def envelope(self, ws: Workspace, event: dict[str, Any]) -> dict[str, Any]:
        """An `event_callback` as Slack wraps every event (https://docs.slack.dev/apis/events-api/#callback-field)."""
        return {
            "token": "sandbox-verification-token", "team_id": ws.team_id,
            "api_app_id": ws.app_id, "event": event, "type": "event_callback",
            "event_id": f"Ev0SBX{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(float(event.get("event_ts") or time.time())),
            "authorizations": [{"enterprise_id": None, "team_id": ws.team_id,
                                "user_id": ws.bot_user_id, "is_bot": True,
                                "is_enterprise_install": False}],
            "is_ext_shared_channel": self.channels[event["channel"]].shared
            if event.get("channel") in self.channels else False,
        }

    def message_event(self, ws: Workspace, user: str, channel: Channel, text: str, *,
                      thread_ts: str | None = None,
                      files: list[SandboxFile] | None = None,
                      base_url: str = "") -> dict[str, Any]:
        ts = self.next_ts()
        event: dict[str, Any] = {
            "client_msg_id": str(uuid.uuid4()), "type": "message", "text": text, "user": user,
            "ts": ts, "team": ws.team_id,
            "blocks": [{"type": "rich_text", "block_id": uuid.uuid4().hex[:4], "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
            "channel": channel.id, "event_ts": ts, "channel_type": channel.kind}
        if thread_ts:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = user
        if files:
            event["subtype"] = "file_share"
            event["upload"] = False
            event["files"] = [self.file_object(f, base_url) for f in files]
        return self.envelope(ws, event)

    def file_object(self, file: SandboxFile, base_url: str) -> dict[str, Any]:
        """https://docs.slack.dev/reference/objects/file-object/ (the fields we read)."""
        path = f"{base_url}/files-pri/{file.team_id}-{file.id}"
        return {"id": file.id, "created": int(time.time()), "timestamp": int(time.time()),
                "name": file.name, "title": file.name, "mimetype": file.mime,
                "filetype": file.name.rsplit(".", 1)[-1], "user": file.user,
                "size": len(file.data), "mode": "hosted", "is_external": False,
                "is_public": False, "url_private": f"{path}/{file.name}",
                "url_private_download": f"{path}/download/{file.name}"}

    def edit_event(self, ws: Workspace, channel: Channel, original: dict[str, Any],
                   new_text: str) -> dict[str, Any]:
        ts = self.next_ts()
        message = {**original, "text": new_text, "edited": {"user": original["user"], "ts": ts}}
        for key in ("channel", "event_ts", "channel_type"):
            message.pop(key, None)
        previous = {k: v for k, v in original.items()
                    if k not in ("channel", "event_ts", "channel_type")}
        return self.envelope(ws, {
            "type": "message", "subtype": "message_changed", "message": message,
            "previous_message": previous, "channel": channel.id, "hidden": True, "ts": ts,
            "event_ts": ts, "channel_type": channel.kind})

    def delete_event(self, ws: Workspace, channel: Channel,
                     original: dict[str, Any]) -> dict[str, Any]:
        ts = self.next_ts()
        previous = {k: original[k] for k in ("type", "text", "user", "team", "ts")
                    if k in original}
        return self.envelope(ws, {
            "type": "message", "subtype": "message_deleted", "previous_message": previous,
            "channel": channel.id, "hidden": True, "deleted_ts": original["ts"],
            "event_ts": ts, "ts": ts, "channel_type": channel.kind})

    def reaction_event(self, ws: Workspace, user: str, channel: Channel, ts: str,
                       reaction: str, added: bool) -> dict[str, Any]:
        return self.envelope(ws, {
            "type": "reaction_added" if added else "reaction_removed", "user": user,
            "item": {"type": "message", "channel": channel.id, "ts": ts},
            "reaction": reaction, "event_ts": self.next_ts()})

    def own_echo(self, ws: Workspace, posted: Posted) -> dict[str, Any]:
        """Slack sends our own post back as a message event, `bot_id` ours."""
        event: dict[str, Any] = {
            "bot_id": ws.bot_id, "type": "message", "text": posted.text,
            "user": ws.bot_user_id, "app_id": ws.app_id, "ts": posted.ts, "team": ws.team_id,
            "channel": posted.channel, "event_ts": posted.ts,
            "channel_type": self.channels[posted.channel].kind}
        if posted.username:
            event.update(subtype="bot_message", username=posted.username)
        if posted.thread_ts:
            event["thread_ts"] = posted.thread_ts
        return self.envelope(ws, event)
