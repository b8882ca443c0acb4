"""The X API v2 routes of the sandbox (sandbox.py holds the state and the plumbing).

Each handler gets the request and the authenticated caller and returns `(status, body)` or
raises `ApiError`; shapes follow X's API reference pages linked on each handler.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from connectors.x import activity
from connectors.x.sandbox_state import (
    ApiError,
    App,
    DMEvent,
    Post,
    User,
    conversation_of,
    fields_of,
    find_mentions,
    iso,
    next_id,
    problem,
)

if TYPE_CHECKING:
    from connectors.x.sandbox import Caller

log = logging.getLogger(__name__)
REPLY_RESTRICTED = ("Reply to this conversation is not allowed because you have not been "
                    "mentioned or otherwise engaged by the author of the post you are replying to.")
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
DM_CLOSED = "You cannot send messages to this user."
Result = tuple[int, Any]


def _invalid(detail: str) -> ApiError:
    return ApiError(400, problem(400, "Invalid Request", detail,
                                 "https://api.x.com/2/problems/invalid-request"))


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


class ApiHandlers:
    clock: Callable[[], float]
    reply_restriction: bool
    apps: dict[str, App]
    users: dict[str, User]
    posts: dict[str, Post]
    dms: list[DMEvent]
    webhooks: dict[str, dict[str, Any]]
    subscriptions: dict[str, dict[str, Any]]
    sent_items: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    _http: aiohttp.ClientSession | None
    _tasks: set[asyncio.Task[None]]
    _sent_event: asyncio.Event

    if TYPE_CHECKING:
        def _need_user(self, caller: Caller) -> User: ...

        def _page(self, items: list[Any], request: web.Request, lo: int, hi: int,
                  default: int) -> tuple[list[Any], str | None]: ...

    # ------------------------------------------------------------------ users, reads

    async def _me(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/users/get-my-user"""
        user = self._need_user(caller)
        return 200, {"data": user.render(fields_of(request.query, "user.fields"))}

    def _includes(self, items: list[Any], request: web.Request, user_ids: set[str],
                  ) -> dict[str, Any]:
        expansions = fields_of(request.query, "expansions")
        out: dict[str, Any] = {}
        users = [self.users[u].render(fields_of(request.query, "user.fields"))
                 for u in sorted(user_ids) if u in self.users]
        if users:
            out["users"] = users
        if "attachments.media_keys" in expansions:
            media = [m.render(fields_of(request.query, "media.fields"))
                     for item in items for m in item.media]
            if media:
                out["media"] = media
        if "referenced_tweets.id" in expansions:
            refs = [self.posts[i].render(fields_of(request.query, "tweet.fields"))
                    for item in items if isinstance(item, Post)
                    for _, i in item.referenced if i in self.posts]
            if refs:
                out["tweets"] = refs
        return out

    async def _mentions(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/users/get-mentions: newest first, `since_id`, pages."""
        uid = request.match_info["id"]
        since = request.query.get("since_id")
        found = sorted((p for p in self.posts.values()
                        if p.mentions_user(uid) and p.author_id != uid and not p.superseded
                        and (not since or int(p.id) > int(since))),
                       key=lambda p: int(p.id), reverse=True)
        page, token = self._page(found, request, 5, 100, 10)
        if not page:
            return 200, {"meta": {"result_count": 0}}
        authors = ({p.author_id for p in page}
                   if "author_id" in fields_of(request.query, "expansions") else set())
        fields = fields_of(request.query, "tweet.fields")
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id,
                                "oldest_id": page[-1].id}
        if token:
            meta["next_token"] = token
        body: dict[str, Any] = {"data": [p.render(fields) for p in page], "meta": meta}
        includes = self._includes(page, request, authors)
        if includes:
            body["includes"] = includes
        return 200, body

    async def _dm_events(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/direct-messages/get-dm-events: newest first, no since_id."""
        user = self._need_user(caller)
        kinds = fields_of(request.query, "event_types")
        if kinds and "MessageCreate" not in kinds:
            return 200, {"meta": {"result_count": 0}}
        found = sorted((e for e in self.dms if user.id in e.participants),
                       key=lambda e: int(e.id), reverse=True)
        page, token = self._page(found, request, 1, 100, 100)
        if not page:
            return 200, {"meta": {"result_count": 0}}
        senders = ({e.sender_id for e in page}
                   if "sender_id" in fields_of(request.query, "expansions") else set())
        meta: dict[str, Any] = {"result_count": len(page)}
        if token:
            meta["next_token"] = token
        body: dict[str, Any] = {
            "data": [e.render(fields_of(request.query, "dm_event.fields")) for e in page],
            "meta": meta}
        includes = self._includes(page, request, senders)
        if includes:
            body["includes"] = includes
        return 200, body

    # ------------------------------------------------------------------ writes

    def _record(self, item: dict[str, Any]) -> None:
        self.sent_items.append(item)
        self._sent_event.set()

    async def _create_post(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/posts/create-post; the reply rule of
        https://docs.x.com/x-api/posts/manage-tweets/integrate ("Reply restrictions")."""
        user = self._need_user(caller)
        body = await _json(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise _invalid("The `text` field is required.")
        reply = body.get("reply") if isinstance(body.get("reply"), dict) else {}
        target_id = reply.get("in_reply_to_tweet_id")
        target = self.posts.get(str(target_id)) if target_id else None
        if target_id and target is None:
            raise ApiError(403, problem(403, "Forbidden", "You attempted to reply to a Tweet "
                                        "that is deleted or not visible to you."))
        if target is not None and self.reply_restriction and not self._may_reply(user, target):
            raise ApiError(403, problem(403, "Forbidden", REPLY_RESTRICTED))
        if any(p.author_id == user.id and p.text == text for p in self.posts.values()):
            raise ApiError(403, problem(403, "Forbidden", DUPLICATE))
        pid = next_id()
        post = Post(pid, user.id, text, self.clock(),
                    target.conversation_id if target else pid,
                    in_reply_to_user_id=target.author_id if target else None,
                    referenced=[("replied_to", target.id)] if target else [],
                    mentions=find_mentions(text, self.users.values()), edit_history=[pid])
        self.posts[pid] = post
        self._record({"kind": "post", "id": pid, "text": text, "author_id": user.id,
                      "in_reply_to": target.id if target else None})
        return 201, {"data": {"id": pid, "text": text, "edit_history_tweet_ids": [pid]}}

    def _may_reply(self, user: User, target: Post) -> bool:
        if target.author_id == user.id or target.mentions_user(user.id):
            return True
        return any(t == "quoted" and self.posts.get(i) is not None
                   and self.posts[i].author_id == user.id for t, i in target.referenced)

    async def _send_dm(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/direct-messages/create-dm-message-by-participant-id"""
        user = self._need_user(caller)
        pid = request.match_info["pid"]
        body = await _json(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise _invalid("The `text` field is required.")
        other = self.users.get(pid)
        if other is None:
            raise _invalid(f"Could not find user with id: [{pid}].")
        if not other.dms_open:
            raise ApiError(403, problem(403, "Forbidden", DM_CLOSED))
        event = DMEvent(next_id(), user.id, conversation_of(user.id, pid), text, self.clock())
        self.dms.append(event)
        self._record({"kind": "dm", "id": event.id, "text": text, "author_id": user.id,
                      "participant_id": pid})
        return 201, {"data": {"dm_conversation_id": event.conversation_id,
                              "dm_event_id": event.id}}

    # ------------------------------------------------------------------ app token

    async def _token(self, request: web.Request) -> web.Response:
        """https://docs.x.com/fundamentals/authentication/oauth-2-0/application-only"""
        auth = request.headers.get("Authorization") or ""
        app = None
        if auth.startswith("Basic "):
            try:
                key, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                key, secret = "", ""
            candidate = self.apps.get(key)
            if candidate is not None and secrets.compare_digest(candidate.consumer_secret,
                                                                secret):
                app = candidate
        form = await request.post()
        if app is None or form.get("grant_type") != "client_credentials":
            return web.json_response({"errors": [{"code": 99, "label": "authenticity_token_error",
                                                  "message": "Unable to verify your credentials"}]},
                                     status=403)
        if not app.bearer:
            app.bearer = "AAAA" + secrets.token_urlsafe(24)
        return web.json_response({"token_type": "bearer", "access_token": app.bearer})

    # ------------------------------------------------------------------ webhooks

    async def _crc(self, hook: dict[str, Any]) -> bool:
        app = self.apps[hook["app"]]
        token = secrets.token_urlsafe(16)
        if self._http is None:
            return False
        try:
            async with self._http.get(hook["url"], params={"crc_token": token}) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        expected = activity.crc_answer(app.consumer_secret, token)["response_token"]
        return isinstance(answer, dict) and answer.get("response_token") == expected

    async def _create_webhook(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/webhooks/quickstart: CRC first, one URL per app."""
        url = (await _json(request)).get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("UrlValidationFailed")
        if any(h["url"] == url and h["app"] == caller.app.consumer_key
               for h in self.webhooks.values()):
            raise _invalid("DuplicateUrlFailed")
        hook = {"id": next_id(), "url": url, "app": caller.app.consumer_key,
                "created_at": iso(self.clock()), "valid": False}
        if not await self._crc(hook):
            raise _invalid("CrcValidationFailed")
        hook["valid"] = True
        self.webhooks[hook["id"]] = hook
        return 200, {"data": {k: hook[k] for k in ("id", "url", "valid", "created_at")}}

    def _app_hooks(self, caller: Caller) -> list[dict[str, Any]]:
        return [h for h in self.webhooks.values() if h["app"] == caller.app.consumer_key]

    async def _list_webhooks(self, request: web.Request, caller: Caller) -> Result:
        if caller.user is not None:
            raise ApiError(403, problem(403, "Unsupported Authentication", "Authenticating "
                                        "with OAuth 1.0a User Context is forbidden for this "
                                        "endpoint.", "https://api.twitter.com/2/problems/"
                                        "unsupported-authentication"))
        hooks = [{k: h[k] for k in ("id", "url", "valid", "created_at")}
                 for h in self._app_hooks(caller)]
        return 200, {"data": hooks, "meta": {"result_count": len(hooks)}}

    async def _validate_webhook(self, request: web.Request, caller: Caller) -> Result:
        hook = self._hook(request, caller)
        hook["valid"] = await self._crc(hook)
        return 200, {"data": {"valid": hook["valid"]}}

    async def _delete_webhook(self, request: web.Request, caller: Caller) -> Result:
        hook = self._hook(request, caller)
        del self.webhooks[hook["id"]]
        return 200, {"data": {"deleted": True}}

    def _hook(self, request: web.Request, caller: Caller) -> dict[str, Any]:
        hook = self.webhooks.get(request.match_info["id"])
        if hook is None or hook["app"] != caller.app.consumer_key:
            raise _invalid("WebhookIdInvalid")
        return hook

    # ------------------------------------------------------------------ Activity API

    async def _create_sub(self, request: web.Request, caller: Caller) -> Result:
        """https://docs.x.com/x-api/activity/quickstart ("Create subscription")."""
        body = await _json(request)
        filt = body.get("filter") if isinstance(body.get("filter"), dict) else {}
        user_id = filt.get("user_id")
        if not isinstance(body.get("event_type"), str) or not isinstance(user_id, str):
            raise _invalid("`event_type` and `filter.user_id` are required.")
        target = self.users.get(user_id)
        if target is None or target.app_key != caller.app.consumer_key:
            raise ApiError(403, problem(403, "Forbidden", "Subscriptions for private events "
                                        "can only be created for users who have authorized "
                                        "your application."))
        now = iso(self.clock())
        sub = {"subscription_id": next_id(), "event_type": body["event_type"],
               "filter": {"user_id": user_id}, "created_at": now, "updated_at": now,
               "app": caller.app.consumer_key}
        for key in ("tag", "webhook_id"):
            if isinstance(body.get(key), str):
                sub[key] = body[key]
        self.subscriptions[sub["subscription_id"]] = sub
        return 200, {"data": self._public(sub), "meta": {"total_subscriptions": len(
            [s for s in self.subscriptions.values() if s["app"] == caller.app.consumer_key])}}

    @staticmethod
    def _public(sub: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in sub.items() if k != "app"}

    async def _list_subs(self, request: web.Request, caller: Caller) -> Result:
        subs = [self._public(s) for s in self.subscriptions.values()
                if s["app"] == caller.app.consumer_key]
        return 200, {"data": subs, "meta": {"total_subscriptions": len(subs)}}

    async def _delete_sub(self, request: web.Request, caller: Caller) -> Result:
        if caller.user is not None:
            raise ApiError(403, problem(403, "Unsupported Authentication", "Authenticating "
                                        "with OAuth 1.0a User Context is forbidden for this "
                                        "endpoint.", "https://api.twitter.com/2/problems/"
                                        "unsupported-authentication"))
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None or sub["app"] != caller.app.consumer_key:
            raise ApiError(404, problem(404, "Not Found Error", "Subscription not found.",
                                        "https://api.x.com/2/problems/resource-not-found"))
        del self.subscriptions[sub["subscription_id"]]
        left = [s for s in self.subscriptions.values() if s["app"] == caller.app.consumer_key]
        return 200, {"data": {"deleted": True}, "meta": {"total_subscriptions": len(left)}}

    # ------------------------------------------------------------------ deliveries

    def _activity_for_post(self, post: Post) -> None:
        fields = {"author_id", "created_at", "conversation_id", "in_reply_to_user_id",
                  "referenced_tweets", "attachments", "entities"}
        payload = post.render(fields)
        includes = {"users": [self.users[post.author_id].render({"profile_image_url"})]} \
            if post.author_id in self.users else {}
        for uid in {m[0] for m in post.mentions}:
            if uid != post.author_id:
                self._deliver("post.mention.create", uid, payload, includes)
        if post.in_reply_to_user_id and post.in_reply_to_user_id != post.author_id:
            self._deliver("post.reply.create", post.in_reply_to_user_id, payload, includes)

    def _deliver(self, event_type: str, user_id: str, payload: dict[str, Any],
                 includes: dict[str, Any]) -> None:
        for sub in list(self.subscriptions.values()):
            hook = self.webhooks.get(sub.get("webhook_id", ""))
            if sub["event_type"] != event_type or sub["filter"].get("user_id") != user_id \
                    or hook is None or not hook["valid"]:
                continue
            envelope = {"data": {"event_uuid": next_id(), "filter": {"user_id": user_id},
                                 "event_type": event_type, "tag": sub.get("tag", ""),
                                 "payload": payload, "includes": includes}}
            task = asyncio.get_running_loop().create_task(self._post_event(hook, envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post_event(self, hook: dict[str, Any], envelope: dict[str, Any]) -> None:
        body = json.dumps(envelope, ensure_ascii=False).encode()
        secret = self.apps[hook["app"]].consumer_secret
        record = {"url": hook["url"], "event_type": envelope["data"]["event_type"],
                  "status": None, "attempts": 0}
        self.deliveries.append(record)
        for attempt in range(3):
            record["attempts"] = attempt + 1
            try:
                assert self._http is not None
                async with self._http.post(hook["url"], data=body, headers={
                        "content-type": "application/json",
                        activity.SIGNATURE_HEADER: activity.sign(secret, body)}) as resp:
                    record["status"] = resp.status
                    if resp.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                record["status"] = f"error: {type(exc).__name__}"
            await asyncio.sleep(0.05 * 2**attempt)
