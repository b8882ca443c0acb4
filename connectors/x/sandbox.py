"""A fake X API v2 for tests, `switchboard demo` and benchmarks; tweepy talks to it unchanged.

    sandbox = XSandbox()
    base_url = await sandbox.start()
    sandbox.add_app("ck", "cs")
    us = sandbox.add_account("ck", "at", "ats", username="acme_support", name="Acme Support")
    customer = sandbox.add_user("li_na", "李娜")
    sandbox.inject_mention(customer, "@acme_support 我的订单还没到")

It speaks X's shapes: problem bodies `{"title", "detail", "type", "status"}`, the
`x-rate-limit-*` headers on every answer from real per-window counters (429 when a window is
spent), OAuth 1.0a signatures checked against the URL that was reached, app-only Bearer tokens
from `POST /oauth2/token`, the self-serve reply restriction (403 unless the post being answered
mentions or quotes the account, or is its own), and the Activity API: webhooks registered with
a CRC check, subscriptions, and signed deliveries of `post.mention.create`,
`post.reply.create` and `dm.received`. Everything is also reachable under `/_sandbox/` over
HTTP for a separate process (the demo, a browser test).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from connectors.x.sandbox_api import ApiHandlers
from connectors.x.sandbox_control import ControlRoutes
from connectors.x.sandbox_state import (
    ApiError,
    App,
    DMEvent,
    HostedFile,
    Media,
    Post,
    RateWindows,
    User,
    conversation_of,
    dumps,
    find_mentions,
    next_id,
    oauth_params,
    problem,
    verify_oauth1,
)

log = logging.getLogger(__name__)
Handler = Callable[[web.Request, "Caller"], Any]


class Caller:
    def __init__(self, app: App, user: User | None) -> None:
        self.app = app
        self.user = user

    @property
    def key(self) -> str:
        return self.user.id if self.user else f"app:{self.app.consumer_key}"


class XSandbox(ApiHandlers, ControlRoutes):
    def __init__(self, *, clock: Callable[[], float] = time.time, verify_signatures: bool = True,
                 reply_restriction: bool = True, limits: Mapping[str, int] | None = None,
                 ) -> None:
        """`limits` overrides X's per-15-minute request limits by route family (the demo
        reads DMs more often than X's 15 per window would let it)."""
        self.clock = clock
        self.verify_signatures = verify_signatures
        self.reply_restriction = reply_restriction
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.posts: dict[str, Post] = {}
        self.dms: list[DMEvent] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.windows = RateWindows(lambda: self.clock(), limits)
        self.failures: list[dict[str, Any]] = []
        self.sent_items: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.files: dict[str, HostedFile] = {}  # path on base_url → the file served there
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent_event = asyncio.Event()
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        routes: list[tuple[str, str, str, Handler]] = [
            ("GET", "/2/users/me", "users/me", self._me),
            ("GET", "/2/users/{id}/mentions", "mentions", self._mentions),
            ("GET", "/2/dm_events", "dm_events", self._dm_events),
            ("POST", "/2/tweets", "tweets", self._create_post),
            ("POST", "/2/dm_conversations/with/{pid}/messages", "dm_send", self._send_dm),
            ("POST", "/2/webhooks", "webhooks", self._create_webhook),
            ("GET", "/2/webhooks", "webhooks", self._list_webhooks),
            ("PUT", "/2/webhooks/{id}", "webhooks", self._validate_webhook),
            ("DELETE", "/2/webhooks/{id}", "webhooks", self._delete_webhook),
            ("POST", "/2/activity/subscriptions", "activity", self._create_sub),
            ("GET", "/2/activity/subscriptions", "activity", self._list_subs),
            ("DELETE", "/2/activity/subscriptions/{id}", "activity", self._delete_sub),
        ]
        for method, path, family, handler in routes:
            app.router.add_route(method, path, self._wrap(family, handler))
        app.router.add_post("/oauth2/token", self._token)
        # media: `/media/...` stands in for pbs.twimg.com and video.twimg.com, `/1.1/ton/...`
        # for ton.twitter.com (a DM's media, OAuth 1.0a signed)
        app.router.add_get("/media/{name}", self._serve_media)
        app.router.add_get("/1.1/ton/data/dm/{dm_id}/{media_id}/{name}", self._serve_media)
        self.add_control_routes(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # ------------------------------------------------------------------ Python controls

    def add_app(self, consumer_key: str, consumer_secret: str) -> App:
        self.apps[consumer_key] = App(consumer_key, consumer_secret)
        return self.apps[consumer_key]

    def add_user(self, username: str, name: str, *, user_id: str | None = None,
                 dms_open: bool = True) -> str:
        uid = user_id or next_id()
        self.users[uid] = User(uid, username, name, dms_open=dms_open,
                               profile_image_url=f"https://pbs.twimg.com/profile_images/{uid}"
                                                 "/avatar_normal.jpg")
        return uid

    def add_account(self, consumer_key: str, access_token: str, access_token_secret: str, *,
                    username: str, name: str, user_id: str | None = None) -> str:
        """A user who authorised the app `consumer_key` (the brand account we act as)."""
        uid = self.add_user(username, name, user_id=user_id)
        user = self.users[uid]
        user.app_key, user.access_token = consumer_key, access_token
        user.access_token_secret = access_token_secret
        return uid

    def set_tokens(self, user_id: str, access_token: str, access_token_secret: str) -> None:
        """The account's owner regenerated its access token on X: the old one is refused
        (401) from now on and only the new one works."""
        user = self.users[user_id]
        user.access_token, user.access_token_secret = access_token, access_token_secret

    def fail(self, route: str, status: int, *, detail: str | None = None,
             ptype: str = "about:blank", times: int = 1, headers: dict[str, str] | None = None,
             body: Any = None, user_id: str | None = None) -> None:
        """The next `times` calls of `route` ("users/me", "mentions", "dm_events", "tweets",
        "dm_send", "webhooks", "activity", "media": any media file) answer `status` with a
        problem body; with `user_id`, only calls made as that account (X counts limits per user)."""
        self.failures.append({"route": route, "status": status, "detail": detail,
                              "type": ptype, "times": times, "headers": headers or {},
                              "body": body, "user_id": user_id})

    def clear_failures(self) -> None:
        self.failures.clear()

    def sent(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.sent_items if kind is None or s["kind"] == kind]

    async def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.sent_items) < n:
                self._sent_event.clear()
                await self._sent_event.wait()
        return self.sent_items

    async def idle(self) -> None:
        """Until every webhook delivery under way has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def host_file(self, data: bytes, mime: str, name: str) -> str:
        """Serve `data` publicly at `<base_url>/media/<name>` (as pbs.twimg.com serves a post's
        photo, video.twimg.com a video's renditions); the URL to put in a `Media`."""
        self.files[f"/media/{name}"] = HostedFile(data, mime)
        return f"{self.base_url}/media/{name}"

    @staticmethod
    def photo(data: bytes, mime: str = "image/jpeg", *, media_type: str = "photo") -> Media:
        """A photo whose bytes the sandbox serves once a post or DM carries it: a post's at a
        public `/media/` URL, a DM's at a `/1.1/ton/data/dm/...` URL only its participants
        may fetch, with a signed request."""
        return Media(f"3_{next_id()}", media_type, data=data, mime=mime)

    def _host(self, media: list[Media], dm: DMEvent | None = None) -> None:
        ext = {"image/png": "png", "image/gif": "gif", "video/mp4": "mp4"}
        for m in media:
            if m.data is None or m.url:
                continue
            media_id = m.media_key.split("_", 1)[-1]
            name = f"{media_id}.{ext.get(m.mime, 'jpg')}"
            if dm is None:
                m.url = self.host_file(m.data, m.mime, name)
                continue
            path = f"/1.1/ton/data/dm/{dm.id}/{media_id}/{name}"
            self.files[path] = HostedFile(m.data, m.mime, tuple(dm.participants))
            m.url = self.base_url + path

    def inject_post(self, author_id: str, text: str, *, in_reply_to: str | None = None,
                    quote: str | None = None, media: list[Media] | None = None) -> str:
        """A customer's post; mentions of known users are found in the text."""
        pid = next_id()
        target = self.posts.get(in_reply_to) if in_reply_to else None
        refs = [("replied_to", target.id)] if target else []
        if quote and quote in self.posts:
            refs.append(("quoted", quote))
        post = Post(pid, author_id, text, self.clock(),
                    target.conversation_id if target else pid,
                    in_reply_to_user_id=target.author_id if target else None, referenced=refs,
                    mentions=find_mentions(text, self.users.values()), media=media or [],
                    edit_history=[pid])
        self._host(post.media)
        self.posts[pid] = post
        self._activity_for_post(post)
        return pid

    def inject_mention(self, author_id: str, text: str, *, to: str | None = None,
                       in_reply_to: str | None = None, media: list[Media] | None = None) -> str:
        """A post mentioning `to` (default: every account); "@handle " is put in front when
        the text does not name it."""
        for user in self.users.values():
            named = f"@{user.username}".lower() in text.lower()
            if ((to is None and user.app_key) or user.id == to) and not named:
                text = f"@{user.username} {text}"
        return self.inject_post(author_id, text, in_reply_to=in_reply_to, media=media)

    def edit_post(self, post_id: str, text: str) -> str:
        """Edit a post: X gives the new version a new id and both the same edit history."""
        old = self.posts[post_id]
        new_id = next_id()
        history = [*(old.edit_history or [old.id]), new_id]
        new = Post(new_id, old.author_id, text, self.clock(), old.conversation_id,
                   old.in_reply_to_user_id, list(old.referenced),
                   find_mentions(text, self.users.values()), list(old.media), history)
        old.edit_history = history
        self.posts[new_id] = new
        return new_id

    def inject_dm(self, sender_id: str, to: str, text: str, *,
                  media: list[Media] | None = None) -> str:
        event = DMEvent(next_id(), sender_id, conversation_of(sender_id, to), text, self.clock(),
                        media or [])
        self._host(event.media, event)
        self.dms.append(event)
        self._deliver("dm.received", to, {"direct_message_events": [event.legacy(to)],
                                          "users": {u: {"data": self.users[u].render(
                                              {"profile_image_url"})}
                                              for u in (sender_id, to) if u in self.users}},
                      {})
        return event.id

    # ------------------------------------------------------------------ plumbing

    def _wrap(self, family: str, handler: Handler) -> Callable[[web.Request], Any]:
        async def serve(request: web.Request) -> web.Response:
            call = {"method": request.method, "path": request.path,
                    "query": dict(request.query), "status": None,
                    "auth": (request.headers.get("Authorization") or "").split(" ")[0]}
            self.calls.append(call)
            headers: dict[str, str] = {}
            try:
                caller = self._authenticate(request)
                headers = self.windows.take(family, caller.key)
                self._injected(family, caller)
                status, body = await handler(request, caller)
            except ApiError as exc:
                status, body, headers = exc.status, exc.body, {**headers, **exc.headers}
            call["status"] = status
            ctype = "application/problem+json" if status >= 400 else "application/json"
            return web.Response(status=status, body=dumps(body) if body is not None else b"",
                                headers={"content-type": f"{ctype}; charset=utf-8", **headers})
        return serve

    async def _serve_media(self, request: web.Request) -> web.Response:
        """A media file's bytes; failures are injected under the route "media"."""
        call = {"method": request.method, "path": request.path, "query": dict(request.query),
                "status": None,
                "auth": (request.headers.get("Authorization") or "").split(" ")[0]}
        self.calls.append(call)
        try:
            caller = self._authenticate(request) if request.path.startswith("/1.1/ton/") \
                else None
            self._injected("media", caller)
            hosted = self.files.get(request.path)
            if hosted is None:
                raise ApiError(404, problem(404, "Not Found", "Not Found"))
            if hosted.participants is not None and (
                    caller is None or caller.user is None
                    or caller.user.id not in hosted.participants):
                raise ApiError(403, problem(403, "Forbidden", "Forbidden"))
        except ApiError as exc:
            call["status"] = exc.status
            return web.Response(status=exc.status, body=dumps(exc.body), headers={
                "content-type": "application/problem+json; charset=utf-8", **exc.headers})
        call["status"] = 200
        return web.Response(body=hosted.data, content_type=hosted.mime)

    def _injected(self, route: str, caller: Caller | None) -> None:
        for failure in self.failures:
            if failure["user_id"] and (caller is None or caller.user is None
                                       or caller.user.id != failure["user_id"]):
                continue
            if failure["route"] == route and failure["times"] > 0:
                failure["times"] -= 1
                status = failure["status"]
                title = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}.get(
                    status, "Service Unavailable" if status >= 500 else "Invalid Request")
                body = failure["body"] if failure["body"] is not None else problem(
                    status, title, failure["detail"] or title, failure["type"])
                headers = dict(failure["headers"])
                if status == 429 and "x-rate-limit-reset" not in headers:
                    headers.update({"x-rate-limit-remaining": "0",
                                    "x-rate-limit-reset": str(int(self.clock()) + 900)})
                raise ApiError(status, body, headers)

    def _authenticate(self, request: web.Request) -> Caller:
        auth = request.headers.get("Authorization") or ""
        unauthorized = ApiError(401, problem(401, "Unauthorized", "Unauthorized"))
        if auth.startswith("Bearer "):
            token = auth[7:]
            app = next((a for a in self.apps.values() if a.bearer and a.bearer == token), None)
            if app is None:
                raise unauthorized
            return Caller(app, None)
        if not auth.startswith("OAuth "):
            raise unauthorized
        params = oauth_params(auth)
        app = self.apps.get(params.get("oauth_consumer_key", ""))
        user = next((u for u in self.users.values() if u.access_token
                     and u.access_token == params.get("oauth_token")), None)
        if app is None or user is None or user.app_key != app.consumer_key:
            raise unauthorized
        url = f"{request.scheme}://{request.host}{request.path_qs}"
        if self.verify_signatures and not verify_oauth1(
                request.method, url, auth, app.consumer_secret, user.access_token_secret or ""):
            raise unauthorized
        return Caller(app, user)

    @staticmethod
    def _need_user(caller: Caller) -> User:
        if caller.user is None:
            raise ApiError(403, problem(
                403, "Unsupported Authentication", "Authenticating with OAuth 2.0 "
                "Application-Only is forbidden for this endpoint.",
                "https://api.twitter.com/2/problems/unsupported-authentication"))
        return caller.user

    @staticmethod
    def _page(items: list[Any], request: web.Request, lo: int, hi: int,
              default: int) -> tuple[list[Any], str | None]:
        try:
            size = int(request.query.get("max_results", default))
            start = int(request.query.get("pagination_token") or "0", 36)
        except ValueError:
            raise ApiError(400, problem(400, "Invalid Request", "One or more parameters to "
                                        "your request was invalid.", "https://api.x.com/2/"
                                        "problems/invalid-request")) from None
        if not lo <= size <= hi:
            raise ApiError(400, problem(400, "Invalid Request", f"The `max_results` query "
                                        f"parameter value [{size}] is not between {lo} and "
                                        f"{hi}", "https://api.x.com/2/problems/invalid-request"))
        end = start + size
        return items[start:end], (_b36(end) if end < len(items) else None)


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


__all__ = ["Media", "XSandbox"]
