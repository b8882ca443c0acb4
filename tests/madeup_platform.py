"""A made-up platform, "parrot", that plugs into Switchboard through the registry alone.

It has what real platforms outside the first three have and the contract must carry: a webhook
that the platform first checks with a signed GET challenge (`?echostr=`, as WeChat does) and
that answers in XML, an app-level URL receiving every account's events (the account is found
from the payload, as with X's Activity API and Messenger), and a long-lived session (a
websocket, as Slack's Socket Mode) for accounts without a public URL. `ParrotPlatform` is its
fake HTTP API and stream, for the tests only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from connectors.base import (
    AccountContext,
    AccountDirectory,
    AccountInfo,
    AccountRuntime,
    ConnectError,
    Connector,
    ConnectorBase,
    CredentialField,
    HttpRequest,
    HttpResponse,
)
from connectors.rendering import with_signature
from inbox.models import (
    AccountId,
    AgentIdentity,
    Author,
    Delivery,
    Ignored,
    InboundMessage,
    Measure,
    OutboundMessage,
    PermanentError,
    RenderContext,
    Rendered,
    TransientError,
)

# ----------------------------------------------------------------------------- parsing


def _text_message(root: ET.Element, account: AccountContext) -> InboundMessage | Ignored:
    sender = root.findtext("FromUserName") or ""
    if sender == account.platform_id:
        return Ignored("own message")
    return InboundMessage(
        account_id=AccountId(account.id), platform="parrot",
        external_id=root.findtext("MsgId") or "", thread_key=sender, kind="dm",
        author=Author(user_id=sender, name=root.findtext("Nick") or sender),
        text=root.findtext("Content") or "",
        platform_ts=datetime.fromtimestamp(int(root.findtext("CreateTime") or 0), tz=UTC))


HANDLERS: dict[str, Callable[[ET.Element, AccountContext], InboundMessage | Ignored]] = {
    "text": _text_message,
}


def _root(payload: Any) -> ET.Element:
    data = payload.encode() if isinstance(payload, str) else payload
    try:
        return ET.fromstring(data)  # noqa: S314 - test payloads
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc


def dispatch_key(payload: Any) -> str | None:
    kind = _root(payload).findtext("MsgType")
    return kind if kind in HANDLERS else None


def normalise(payload: Any, account: AccountContext) -> InboundMessage | Ignored:
    root = _root(payload)
    handler = HANDLERS.get(root.findtext("MsgType") or "")
    return handler(root, account) if handler else Ignored("unsupported event")


NORMALISER = SimpleNamespace(HANDLERS=HANDLERS, dispatch_key=dispatch_key, normalise=normalise)


def xml_message(to: str, sender: str, text: str, msg_id: str) -> bytes:
    return (f"<xml><ToUserName>{to}</ToUserName><FromUserName>{sender}</FromUserName>"
            f"<CreateTime>1764576000</CreateTime><MsgType>text</MsgType>"
            f"<Content>{text}</Content><MsgId>{msg_id}</MsgId></xml>").encode()


def signature(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - the made-up platform's scheme


# ----------------------------------------------------------------------------- the connector


class ParrotStream:
    """The long-lived session: a websocket that pushes messages and expects an ack each."""

    name = "stream"

    def __init__(self, connector: ParrotConnector) -> None:
        self.connector = connector

    async def run(self, runtime: AccountRuntime, ready: Callable[[], Awaitable[None]]) -> None:
        url = f"{self.connector.base}/stream?key={self.connector.account.secret('api_key')}"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ready()
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                envelope = json.loads(frame.data)
                result = normalise(envelope["xml"], self.connector.account)
                if isinstance(result, InboundMessage):
                    await runtime.sink([result])
                await ws.send_json({"ack": envelope["id"]})  # only once stored


class ParrotConnector(ConnectorBase):
    platform: ClassVar[str] = "parrot"
    modes: ClassVar[tuple[str, ...]] = ("webhook", "stream")
    webhook_modes: ClassVar[tuple[str, ...]] = ("webhook",)
    app_webhook: ClassVar[bool] = True
    ack_deadline: ClassVar[float] = 5.0
    normaliser: ClassVar[Any] = NORMALISER
    credential_fields: ClassVar[tuple[CredentialField, ...]] = (
        CredentialField("api_key", "API key"),
        CredentialField("app_secret", "App secret", modes=("webhook",)),
    )
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = {
        "en": {"name": "Parrot", "cred.api_key": "API key", "cred.app_secret": "App secret",
               "mode.webhook": "Webhook", "mode.stream": "Stream", "error.unknown_user":
               "Parrot does not know this customer."},
        "zh-CN": {"name": "鹦鹉", "cred.api_key": "API 密钥", "cred.app_secret": "应用密钥",
                  "mode.webhook": "Webhook", "mode.stream": "长连接", "error.unknown_user":
                  "鹦鹉平台找不到该客户。"},
    }

    def __init__(self, account: AccountContext, runtime: AccountRuntime) -> None:
        super().__init__(account, runtime)
        self.base = (account.api_base_url or "https://parrot.invalid").rstrip("/")

    @classmethod
    async def route_app_webhook(cls, request: HttpRequest,
                                directory: AccountDirectory) -> HttpResponse | Connector:
        if request.method == "GET":  # the app-level URL is checked with any account's secret
            for connector in await directory.connectors():
                answer = await connector.handle_webhook(request)
                if answer.status == 200:
                    return answer
            return HttpResponse.error(401, "bad_signature", "no account's secret matches")
        try:
            to = _root(request.body).findtext("ToUserName") or ""
        except ValueError:
            return HttpResponse.error(400, "bad_xml", "the body is not XML")
        found = await directory.by_platform_id(to)
        return found if found is not None else HttpResponse.of_text(200, "success")

    def _verified(self, request: HttpRequest) -> bool:
        q = request.query
        expected = signature(self.account.secret("app_secret"), q.get("timestamp", ""),
                             q.get("nonce", ""))
        return hmac.compare_digest(expected, q.get("signature", ""))

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        if not self._verified(request):
            return HttpResponse.error(401, "bad_signature", "signature does not match")
        if request.method == "GET":
            return HttpResponse.of_text(200, request.query.get("echostr", ""))
        try:
            result = normalise(request.body, self.account)
        except ValueError as exc:
            return HttpResponse.error(400, "bad_xml", str(exc))
        if isinstance(result, InboundMessage):
            await self.runtime.sink([result])
        return HttpResponse.of_text(200, "<xml><Result>success</Result></xml>",
                                    content_type="application/xml")

    def inbound(self) -> ParrotStream | None:
        return ParrotStream(self) if self.account.mode == "stream" else None

    async def check(self) -> AccountInfo:
        try:
            async with aiohttp.ClientSession() as http, http.get(
                    f"{self.base}/me", params={"key": self.account.secret("api_key")}) as resp:
                if resp.status == 401:
                    raise ConnectError("invalid_auth", "Parrot refused the key.")
                me = await resp.json()
        except aiohttp.ClientError as exc:
            raise ConnectError("cannot_connect", "Parrot could not be reached.") from exc
        return AccountInfo(platform_id=me["id"], username=me["name"])

    def render(self, identity: AgentIdentity, text: str, context: RenderContext) -> Rendered:
        return Rendered(text=with_signature(identity, text), shown_name=identity.name)

    def measure(self, text: str, context: RenderContext) -> Measure:
        return Measure(used=len(text), limit=100)

    async def send(self, outbound: OutboundMessage) -> Delivery:
        try:
            async with aiohttp.ClientSession() as http, http.post(
                    f"{self.base}/send", params={"key": self.account.secret("api_key")},
                    json={"to": outbound.thread_key, "text": outbound.text}) as resp:
                body = await resp.json()
        except aiohttp.ClientError as exc:
            raise TransientError("Parrot could not be reached.", code="network") from exc
        if resp.status == 404:
            raise PermanentError("Parrot does not know this customer.", code="unknown_user")
        return Delivery(external_id=str(body["id"]))


# ----------------------------------------------------------------------------- its fake API


class ParrotPlatform:
    """The made-up platform's side: an account, a send endpoint, a message stream."""

    def __init__(self, key: str, account_id: str) -> None:
        self.key = key
        self.account_id = account_id
        self.sent: list[dict[str, Any]] = []
        self.acks: list[str] = []
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def push(self, sender: str, text: str, msg_id: str) -> None:
        """A customer writes to an account in stream mode."""
        self.outbox.put_nowait({"id": msg_id, "xml": xml_message(
            self.account_id, sender, text, msg_id).decode()})

    async def _me(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.key:
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"id": self.account_id, "name": "Parrot Shop"})

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["to"] == "nobody":
            return web.json_response({"error": "unknown user"}, status=404)
        self.sent.append(body)
        return web.json_response({"id": f"out-{len(self.sent)}"})

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        waiting: asyncio.Task[dict[str, Any]] | None = None
        while not ws.closed:
            waiting = waiting or asyncio.create_task(self.outbox.get())
            reading = asyncio.create_task(ws.receive())  # the one reader: acks, or the close
            done, _ = await asyncio.wait({waiting, reading}, return_when=asyncio.FIRST_COMPLETED)
            if reading not in done:
                await ws.send_json(waiting.result())
                waiting = None
            frame = await reading
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            self.acks.append(json.loads(frame.data)["ack"])
        if waiting is not None:
            waiting.cancel()
        return ws

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/me", self._me)
        app.router.add_post("/send", self._send)
        app.router.add_get("/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.shutdown()
            await self._runner.cleanup()
