"""A fake Telegram Bot API server for tests, the demo and benchmarks.

The real python-telegram-bot client talks to it unchanged::

    sandbox = TelegramSandbox()
    await sandbox.start()
    sandbox.add_bot(token, 7000000001, "acme_support_bot", "Acme Support")
    bot = Bot(token, base_url=f"{sandbox.base_url}/bot",
              base_file_url=f"{sandbox.base_url}/file/bot")

It speaks the real envelope (`{"ok": true, "result": ...}` / `{"ok": false, "error_code": ...,
"description": ..., "parameters": {"retry_after": N}}`), long-polls `getUpdates`, pushes to a
webhook with `X-Telegram-Bot-Api-Secret-Token` and redelivers until it gets a 2xx, and can be
told to fail. Everything a test can do in Python is also reachable over HTTP under `/_sandbox/`
so a separate process (demo, benchmark, browser test) can drive it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from connectors.telegram.sandbox_state import (
    ApiError,
    BotState,
    Failure,
    Params,
    SandboxFile,
    check_entities,
    check_secret,
    control,
    read_params,
    text_update,
    update_type,
)

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TEXT_LIMIT = 4096


class TelegramSandbox:
    def __init__(self, *, latency: float = 0.0, webhook_retry_delay: float = 0.2,
                 webhook_max_attempts: int = 50, webhook_timeout: float = 10.0,
                 strict_chats: bool = False) -> None:
        """`strict_chats`: sendMessage to a chat no injected update mentioned is a 400
        "chat not found" (as on Telegram); otherwise such a chat is made up as private."""
        self.latency = latency
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_timeout = webhook_timeout
        self.strict_chats = strict_chats
        self._bots: dict[str, BotState] = {}
        self._files: dict[str, SandboxFile] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base_url = ""
        self._methods: dict[str, Callable[[BotState, Params], Awaitable[Any]]] = {
            "getme": self._get_me, "getupdates": self._get_updates,
            "setwebhook": self._set_webhook, "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info, "sendmessage": self._send_message,
            "getfile": self._get_file, "getchat": self._get_chat,
            "answercallbackquery": self._answer_callback_query,
        }

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_post("/_sandbox/bots", self._ctl_bots)
        app.router.add_post("/_sandbox/updates", self._ctl_updates)
        app.router.add_post("/_sandbox/files", self._ctl_files)
        app.router.add_post("/_sandbox/failures", self._ctl_fail)
        app.router.add_delete("/_sandbox/failures", self._ctl_clear)
        app.router.add_get("/_sandbox/sent", self._ctl_sent)
        app.router.add_post("/_sandbox/presses", self._ctl_press)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._closing = False
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(self.app(), access_log=None)  # paths carry tokens
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(self._runner, sock).start()
        self._base_url = f"http://{host}:{sock.getsockname()[1]}"
        return self._base_url

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("sandbox not started")
        return self._base_url

    async def stop(self) -> None:
        self._closing = True
        for bot in self._bots.values():
            bot.notify()  # long polls return at once instead of holding the shutdown
            await self._stop_pusher(bot)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ Python controls

    def add_bot(self, token: str, id: int, username: str, first_name: str) -> dict[str, Any]:
        self._bots[token] = BotState(token=token, id=id, username=username,
                                     first_name=first_name)
        return self._bots[token].get_me()

    def inject_update(self, token: str, update: Mapping[str, Any]) -> int:
        """Queue an update (or a bare Message, wrapped as `message`); returns its update_id."""
        bot = self._bot(token)
        body = {k: v for k, v in update.items() if k != "update_id"}
        kind = update_type(body)
        if kind is None:
            if "chat" not in body or "message_id" not in body:
                raise ValueError("neither an Update nor a Message")
            body, kind = {"message": body}, "message"
        full = {"update_id": bot.next_update_id, **body}
        bot.next_update_id += 1
        if isinstance(body[kind], Mapping):
            bot.remember(body[kind])
        if bot.wants(kind):
            bot.pending.append(full)
            bot.notify()
        return int(full["update_id"])

    def inject_text(self, token: str, chat_id: int, text: str, *,
                    user: Mapping[str, Any] | None = None, chat_type: str = "private",
                    chat_title: str | None = None,
                    reply_to_message_id: int | None = None) -> dict[str, Any]:
        """A customer's text message; returns the full update as queued."""
        update = text_update(self._bot(token), chat_id, text, user=user, chat_type=chat_type,
                             chat_title=chat_title, reply_to_message_id=reply_to_message_id)
        return {"update_id": self.inject_update(token, update), **update}

    def press_button(self, token: str, chat_id: int, message_id: int, data: str, *,
                     user: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A customer presses an inline keyboard button under one of the bot's messages: a
        `callback_query` update (https://core.telegram.org/bots/api#callbackquery). The
        button must be on that message, as on Telegram."""
        bot = self._bot(token)
        message = bot.messages.get(chat_id, {}).get(message_id)
        if message is None:
            raise ValueError("no such message")
        offered = [b.get("callback_data") for row in (message.get("reply_markup") or {}).get(
            "inline_keyboard", []) for b in row]
        if data not in offered:
            raise ValueError("that message has no such button")
        chat = message["chat"]
        sender = {"is_bot": False, **(user or {"id": chat_id, "first_name": chat.get(
            "first_name") or "Test"})}
        query_id = f"{bot.id}{bot.next_update_id:08d}"
        update = {"callback_query": {"id": query_id, "from": sender, "message": message,
                                     "chat_instance": f"-{abs(chat_id) * 7919}",
                                     "data": data}}
        return {"update_id": self.inject_update(token, update), **update}

    def answered(self, token: str) -> list[str]:
        """The callback query ids the bot answered."""
        return list(self._bot(token).answered)

    def add_file(self, file_id: str, data: bytes, file_path: str,
                 mime: str = "application/octet-stream") -> None:
        self._files[file_id] = SandboxFile(file_id, data, file_path, mime)

    def fail(self, token: str, method: str, status: int, *, description: str | None = None,
             retry_after: int | None = None, times: int | None = 1) -> None:
        """Make the next `times` calls of `method` ("*" = any) fail; None = until cleared."""
        if status == 429 and retry_after is None:
            retry_after = 1
        self._bot(token).failures.append(
            Failure(method.lower(), ApiError(status, description, retry_after=retry_after), times))

    def clear_failures(self, token: str | None = None) -> None:
        for bot in [self._bot(token)] if token else self._bots.values():
            bot.failures.clear()

    def sent(self, token: str) -> list[dict[str, Any]]:
        """Recorded sendMessage calls: {"method", "params", "result"} (result = the Message)."""
        return list(self._bot(token).sent)

    def calls(self, token: str) -> list[dict[str, Any]]:
        """Every Bot API call: {"method", "params", "status"}."""
        return list(self._bot(token).calls)

    def pending_updates(self, token: str) -> list[dict[str, Any]]:
        return list(self._bot(token).pending)

    def webhook_info(self, token: str) -> dict[str, Any]:
        return self._bot(token).webhook_info()

    async def wait_for_sent(self, token: str, n: int,
                            timeout: float = 5.0) -> list[dict[str, Any]]:
        bot = self._bot(token)
        async with asyncio.timeout(timeout):
            while len(bot.sent) < n:
                event = bot.sent_changed
                await event.wait()
        return list(bot.sent)

    def _bot(self, token: str) -> BotState:
        try:
            return self._bots[token]
        except KeyError:
            raise ValueError("unknown bot token") from None

    # ------------------------------------------------------------------ Bot API over HTTP

    async def _api(self, request: web.Request) -> web.Response:
        bot = self._bots.get(request.match_info["token"])
        method = request.match_info["method"].lower()
        params: Params = {}
        try:
            if bot is None:
                raise ApiError(401)
            if self.latency:
                await asyncio.sleep(self.latency)
            params = await read_params(request)
            forced = bot.take_failure(method)
            if forced is not None:
                raise forced
            handler = self._methods.get(method)
            if handler is None:
                raise ApiError(404)
            result = await handler(bot, params)
            body: dict[str, Any] = {"ok": True, "result": result}
            if isinstance(result, tuple):  # (result, description)
                body = {"ok": True, "result": result[0], "description": result[1]}
            status = 200
        except ApiError as exc:
            body, status = exc.body(), exc.status
        if bot is not None:
            bot.calls.append({"method": request.match_info["method"], "params": params,
                              "status": status})
        return web.json_response(body, status=status)

    async def _get_me(self, bot: BotState, params: Params) -> Any:
        return bot.get_me()

    async def _get_updates(self, bot: BotState, params: Params) -> Any:
        if bot.webhook_url:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is "
                                "active; use deleteWebhook to delete the webhook first")
        if isinstance(params.get("offset"), int):
            bot.confirm(params["offset"])
        if isinstance(params.get("allowed_updates"), list):
            bot.allowed_updates = [str(u) for u in params["allowed_updates"]]
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        bot.poll_generation += 1
        generation = bot.poll_generation
        bot.notify()  # an older long poll of this bot now ends with 409, as on Telegram
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != bot.poll_generation:
                raise ApiError(409)
            remaining = deadline - asyncio.get_running_loop().time()
            if bot.pending or remaining <= 0 or bot.webhook_url or self._closing:
                return bot.pending[:limit]
            event = bot.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def _set_webhook(self, bot: BotState, params: Params) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return await self._delete_webhook(bot, params)
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                                "webhook")
        secret = check_secret(params.get("secret_token"))
        if params.get("drop_pending_updates"):
            bot.pending.clear()
        if isinstance(params.get("allowed_updates"), list):
            bot.allowed_updates = [str(u) for u in params["allowed_updates"]]
        same = (url, secret) == (bot.webhook_url, bot.webhook_secret)
        bot.webhook_url, bot.webhook_secret = url, secret
        bot.last_error_date = bot.last_error_message = None
        if bot.webhook_task is None or bot.webhook_task.done():
            bot.webhook_task = asyncio.create_task(self._push(bot))
        bot.notify()
        return True, "Webhook is already set" if same else "Webhook was set"

    async def _delete_webhook(self, bot: BotState, params: Params) -> Any:
        had = bool(bot.webhook_url)
        bot.webhook_url, bot.webhook_secret = "", None
        await self._stop_pusher(bot)
        if params.get("drop_pending_updates"):
            bot.pending.clear()
        return True, "Webhook was deleted" if had else "Webhook is already deleted"

    async def _get_webhook_info(self, bot: BotState, params: Params) -> Any:
        return bot.webhook_info()

    async def _get_chat(self, bot: BotState, params: Params) -> Any:
        return self._chat(bot, params.get("chat_id"), allow_made_up=False)

    def _chat(self, bot: BotState, chat_id: Any, *, allow_made_up: bool) -> dict[str, Any]:
        if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
            chat_id = int(chat_id)
        if isinstance(chat_id, str):
            for chat in bot.chats.values():
                if chat_id.startswith("@") and chat.get("username") == chat_id[1:]:
                    return chat
        elif isinstance(chat_id, int) and not isinstance(chat_id, bool):
            if chat_id in bot.chats:
                return bot.chats[chat_id]
            if allow_made_up and not self.strict_chats and chat_id > 0:
                bot.chats[chat_id] = {"id": chat_id, "first_name": "User",
                                      "last_name": str(chat_id), "type": "private"}
                return bot.chats[chat_id]
        raise ApiError(400, "Bad Request: chat not found")

    async def _send_message(self, bot: BotState, params: Params) -> Any:
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise ApiError(400, "Bad Request: message is too long")
        chat = self._chat(bot, params["chat_id"], allow_made_up=True)
        entities = check_entities(text, params.get("entities"))
        message: dict[str, Any] = {"message_id": bot.next_message_id(chat["id"]),
                                   "from": bot.user(), "chat": chat, "date": int(time.time())}
        if isinstance(params.get("message_thread_id"), int):
            message["message_thread_id"] = params["message_thread_id"]
        reply = params.get("reply_parameters")
        if not isinstance(reply, dict) and params.get("reply_to_message_id") is not None:
            reply = {"message_id": params["reply_to_message_id"],
                     "allow_sending_without_reply": params.get("allow_sending_without_reply")}
        if isinstance(reply, dict):
            replied = bot.messages.get(chat["id"], {}).get(reply.get("message_id"))  # type: ignore[arg-type]
            if replied is not None:
                message["reply_to_message"] = replied
            elif not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        message["text"] = text  # parse_mode markup is not interpreted: text is kept verbatim
        if entities:
            message["entities"] = entities
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            rows = markup["inline_keyboard"]
            if not all(isinstance(r, list) and all(
                    isinstance(b, dict) and isinstance(b.get("text"), str) and (
                        b.get("callback_data") is None or len(str(b["callback_data"]).encode())
                        <= 64) for b in r) for r in rows):
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            message["reply_markup"] = {"inline_keyboard": rows}
        bot.remember(message)
        bot.sent.append({"method": "sendMessage", "params": params, "result": message})
        bot.sent_changed.set()
        bot.sent_changed = asyncio.Event()
        return message

    async def _answer_callback_query(self, bot: BotState, params: Params) -> Any:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or not query_id:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        bot.answered.append(query_id)
        return True

    async def _get_file(self, bot: BotState, params: Params) -> Any:
        entry = self._files.get(str(params.get("file_id")))
        if entry is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return entry.as_api()

    async def _download(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        entry = next((f for f in self._files.values() if f.file_path == path), None)
        if request.match_info["token"] not in self._bots:
            return web.json_response(ApiError(401).body(), status=401)
        if entry is None:
            return web.json_response(ApiError(404).body(), status=404)
        return web.Response(body=entry.data, content_type=entry.mime)

    # ------------------------------------------------------------------ webhook delivery

    async def _push(self, bot: BotState) -> None:
        """Deliver pending updates in order, one at a time, retrying each until a 2xx."""
        attempts = 0
        while bot.webhook_url:
            if not bot.pending:
                event = bot.changed
                await event.wait()
                continue
            update = bot.pending[0]
            headers = {"Content-Type": "application/json"}
            if bot.webhook_secret:
                headers[SECRET_HEADER] = bot.webhook_secret
            error: str | None
            try:
                assert self._session is not None
                async with self._session.post(
                        bot.webhook_url, data=json.dumps(update, ensure_ascii=False).encode(),
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)) as resp:
                    await resp.read()
                    error = None if 200 <= resp.status < 300 else \
                        f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            if error is None:
                attempts = 0
            else:
                attempts += 1
                bot.last_error_date, bot.last_error_message = int(time.time()), error
                if attempts < self.webhook_max_attempts:
                    await asyncio.sleep(self.webhook_retry_delay)
                    continue
                log.warning("sandbox: dropping update %s after %s attempts",
                            update["update_id"], attempts)
                attempts = 0
            if bot.pending and bot.pending[0] is update:
                bot.pending.pop(0)

    async def _stop_pusher(self, bot: BotState) -> None:
        task, bot.webhook_task = bot.webhook_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ /_sandbox controls

    async def _ctl_bots(self, request: web.Request) -> web.Response:
        return await control(request, lambda b: self.add_bot(
            str(b["token"]), int(b["id"]), str(b["username"]), str(b["first_name"])), 201)

    async def _ctl_updates(self, request: web.Request) -> web.Response:
        def run(b: dict[str, Any]) -> Any:
            if "update" in b:
                return {"update_id": self.inject_update(str(b["token"]), b["update"])}
            return self.inject_text(
                str(b["token"]), int(b["chat_id"]), str(b["text"]), user=b.get("user"),
                chat_type=str(b.get("chat_type", "private")), chat_title=b.get("chat_title"),
                reply_to_message_id=b.get("reply_to_message_id"))
        return await control(request, run, 201)

    async def _ctl_files(self, request: web.Request) -> web.Response:
        return await control(request, lambda b: self.add_file(
            str(b["file_id"]), base64.b64decode(b["data_base64"]), str(b["file_path"]),
            str(b.get("mime", "application/octet-stream"))), 201)

    async def _ctl_fail(self, request: web.Request) -> web.Response:
        return await control(request, lambda b: self.fail(
            str(b["token"]), str(b["method"]), int(b["status"]), description=b.get("description"),
            retry_after=b.get("retry_after"), times=b.get("times", 1)), 201)

    async def _ctl_clear(self, request: web.Request) -> web.Response:
        self.clear_failures(request.query.get("token"))
        return web.json_response({"ok": True, "result": True})

    async def _ctl_press(self, request: web.Request) -> web.Response:
        return await control(request, lambda b: self.press_button(
            str(b["token"]), int(b["chat_id"]), int(b["message_id"]), str(b["data"]),
            user=b.get("user")), 201)

    async def _ctl_sent(self, request: web.Request) -> web.Response:
        try:
            return web.json_response({"ok": True, "result": self.sent(request.query["token"])})
        except (KeyError, ValueError):
            return web.json_response({"ok": False, "description": "unknown token"}, status=404)

