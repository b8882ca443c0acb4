"""The sandbox's `/_sandbox/...` HTTP controls, for a process that cannot call it in Python
(`switchboard demo`, a browser test). Each route mirrors one Python method of `XSandbox`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from connectors.x.sandbox_state import Media, next_id, tiny_png

if TYPE_CHECKING:
    from connectors.x.sandbox import XSandbox

DEMO_PHOTO = tiny_png((181, 134, 84), 32)  # a cardboard-brown square: the damaged parcel
DEMO_CUSTOMERS = (("li_na_sh", "李娜"), ("wang_wei88", "王伟"), ("emma_k", "Emma Klein"))


def _media(items: Any) -> list[Media] | None:
    """Media objects as given, or with `data_base64` (and `mime`) a file the sandbox serves."""
    if not isinstance(items, list):
        return None
    return [Media(str(m.get("media_key") or f"3_{next_id()}"), str(m.get("type", "photo")),
                  m.get("url"), m.get("preview_image_url"), m.get("variants"),
                  base64.b64decode(m["data_base64"]) if m.get("data_base64") else None,
                  str(m.get("mime") or "image/jpeg"))
            for m in items if isinstance(m, dict)]


class ControlRoutes:
    def add_control_routes(self, app: web.Application) -> None:
        sandbox: XSandbox = self  # type: ignore[assignment]
        routes: dict[str, Callable[[dict[str, Any]], Any]] = {
            "/_sandbox/apps": lambda b: {"consumer_key": sandbox.add_app(
                b["consumer_key"], b["consumer_secret"]).consumer_key},
            "/_sandbox/accounts": lambda b: {"id": sandbox.add_account(
                b["consumer_key"], b["access_token"], b["access_token_secret"],
                username=b["username"], name=b["name"], user_id=b.get("id"))},
            "/_sandbox/users": lambda b: {"id": sandbox.add_user(
                b["username"], b["name"], user_id=b.get("id"),
                dms_open=bool(b.get("dms_open", True)))},
            "/_sandbox/mentions": lambda b: {"id": sandbox.inject_mention(
                b["author_id"], b["text"], to=b.get("to"), in_reply_to=b.get("in_reply_to"),
                media=_media(b.get("media")))},
            "/_sandbox/posts": lambda b: {"id": sandbox.inject_post(
                b["author_id"], b["text"], in_reply_to=b.get("in_reply_to"),
                quote=b.get("quote"), media=_media(b.get("media")))},
            "/_sandbox/edits": lambda b: {"id": sandbox.edit_post(b["post_id"], b["text"])},
            "/_sandbox/dms": lambda b: {"id": sandbox.inject_dm(
                b["sender_id"], b["to"], b["text"], media=_media(b.get("media")))},
            "/_sandbox/failures": lambda b: sandbox.fail(
                b["route"], int(b["status"]), detail=b.get("detail"),
                ptype=b.get("type", "about:blank"), times=int(b.get("times", 1)),
                headers=b.get("headers"), user_id=b.get("user_id")) or {"ok": True},
            "/_sandbox/tokens": lambda b: sandbox.set_tokens(
                b["user_id"], b["access_token"], b["access_token_secret"]) or {"ok": True},
            "/_sandbox/demo": lambda b: sandbox.seed_demo(b["account_id"]),
        }
        for path, run in routes.items():
            app.router.add_post(path, self._control(run))
        app.router.add_delete("/_sandbox/failures", self._control(
            lambda b: sandbox.clear_failures() or {"ok": True}))
        app.router.add_get("/_sandbox/sent", self._listing(lambda: sandbox.sent()))
        app.router.add_get("/_sandbox/deliveries", self._listing(lambda: sandbox.deliveries))
        app.router.add_get("/_sandbox/calls", self._listing(lambda: sandbox.calls))

    @staticmethod
    def _control(run: Callable[[dict[str, Any]], Any]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = await request.json() if request.can_read_body else {}
                if not isinstance(body, dict):
                    raise ValueError("body must be a JSON object")
                return web.json_response(run(body))
            except (KeyError, ValueError, TypeError) as exc:
                return web.json_response({"error": {"code": "bad_request",
                                                    "message": repr(exc)}}, status=400)
        return handle

    @staticmethod
    def _listing(get: Callable[[], Any]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response(list(get()))
        return handle

    def seed_demo(self, account_id: str) -> dict[str, Any]:
        """A few customers writing to `account_id`, in Chinese and English: two mentions, a
        reply under one of them, a DM with a photo, and an edited mention."""
        sandbox: XSandbox = self  # type: ignore[assignment]
        ids = [sandbox.add_user(u, n) for u, n in DEMO_CUSTOMERS]
        first = sandbox.inject_mention(ids[0], "你们的App今天一直闪退，iPhone 15，已经重装过了，"
                                       "怎么办？", to=account_id)
        second = sandbox.inject_mention(ids[2], "my order #20261203 still shows 'processing' "
                                        "after a week?", to=account_id)
        sandbox.inject_mention(ids[0], "补充一下：是登录之后马上闪退。", to=account_id,
                               in_reply_to=first)
        sandbox.edit_post(second, "@" + sandbox.users[account_id].username + " my order "
                          "#20261203 still shows 'processing' after 8 days?")
        dm = sandbox.inject_dm(ids[1], account_id, "你好，我收到的商品外包装破了，照片在这里。",
                               media=[sandbox.photo(DEMO_PHOTO, "image/png")])
        return {"customers": ids, "mentions": [first, second], "dm": dm}
