"""Slack I/O for one workspace app: Events API webhook, Socket Mode, replies, check, files.

Every Slack call goes through slack-sdk's `AsyncWebClient` (one per connector, one aiohttp
session, base URL = the account's `api_base_url`, so the sandbox stands in for Slack) and
every inbound event through the account's slack-bolt `AsyncApp` (`dispatch.SlackEvents`).
The SDK's own retry handlers are off: retries, with the platform's `Retry-After`, are the
outbox's job, and a blind retry of `chat.postMessage` could post twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from connectors import rendering
from connectors.base import (
    OK,
    AccountContext,
    AccountInfo,
    AccountRuntime,
    AttachmentStream,
    ConnectError,
    ConnectorBase,
    CredentialField,
    HttpRequest,
    HttpResponse,
    Notice,
    OptionField,
)
from connectors.slack import files, profiles
from connectors.slack import normalise as normaliser
from connectors.slack.dispatch import SlackEvents
from connectors.slack.errors import classify, connect_error, sentence
from connectors.slack.mrkdwn import escape
from connectors.slack.normalise import OPTION_DEFAULTS, when
from connectors.slack.signing import SignatureError, verify
from connectors.slack.socket import SlackSocketSource
from connectors.slack.strings import STRINGS
from inbox.models import (
    AgentIdentity,
    Author,
    Button,
    Delivery,
    Interaction,
    Measure,
    OutboundMessage,
    RenderContext,
    Rendered,
)

log = logging.getLogger(__name__)

DEFAULT_API = "https://slack.com/api/"
CUSTOMIZE_SCOPE = "chat:write.customize"
TEXT_LIMIT = 4_000  # chat.postMessage: "limit ... to 4,000 characters"; truncated past 40,000
SENDER_TEMPLATE = "{name} · {title}"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
# The rate-limit scope of replies. Slack counts per method, hence the method's name, with "_"
# for its dot: the host stores pauses under the scope as a field name with dots replaced, and
# reads them back under the scope as given (inbox/accounts.py `_safe_key`), so a dotted scope
# would never be honoured.
POST_SCOPE = "chat_postMessage"


def _route_thread(route: Mapping[str, Any] | None) -> str | None:
    thread_ts = (route or {}).get("thread_ts")
    return thread_ts if isinstance(thread_ts, str) and thread_ts else None


def blocks(text: str, buttons: tuple[Button, ...]) -> list[dict[str, Any]] | None:
    """The reply as Block Kit with its buttons under it
    (https://docs.slack.dev/reference/block-kit/block-elements/button-element/); None when it
    has none (plain `text`, as before). `text` stays the notification's fallback."""
    if not buttons:
        return None
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": b.label[:75]},
                 "action_id": b.data[:255], "value": b.value[:2000]} for b in buttons[:25]]}]


def _scopes(headers: Mapping[str, Any] | None) -> list[str] | None:
    """Granted scopes from the `x-oauth-scopes` header every Web API answer carries."""
    value = (headers or {}).get("x-oauth-scopes") or (headers or {}).get("X-OAuth-Scopes")
    if value is None:
        return None
    return sorted({s.strip() for s in str(value).split(",") if s.strip()})


class SlackConnector(ConnectorBase):
    platform: ClassVar[str] = "slack"
    modes: ClassVar[tuple[str, ...]] = ("events", "socket")
    webhook_modes: ClassVar[tuple[str, ...]] = ("events",)
    credential_fields: ClassVar[tuple[CredentialField, ...]] = (
        CredentialField("bot_token", "Bot token", pattern=r"^xoxb-[A-Za-z0-9-]+$",
                        help="Bot User OAuth Token (xoxb-...)"),
        CredentialField("signing_secret", "Signing secret", pattern=r"^[A-Za-z0-9-]+$",
                        help="Basic Information → Signing Secret", modes=("events",)),
        CredentialField("app_token", "App-level token", pattern=r"^xapp-[A-Za-z0-9-]+$",
                        help="xapp-... with connections:write", modes=("socket",)),
    )
    option_fields: ClassVar[tuple[OptionField, ...]] = (
        OptionField("channel_as_conversation", "One conversation per channel", type="bool",
                    default=OPTION_DEFAULTS["channel_as_conversation"]),
        OptionField("accept_bot_messages", "Accept messages from other bots", type="bool",
                    default=OPTION_DEFAULTS["accept_bot_messages"]),
    )
    ack_deadline: ClassVar[float] = 3.0  # https://docs.slack.dev/apis/events-api/#responding
    app_webhook: ClassVar[bool] = False
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = STRINGS
    normaliser: ClassVar[Any] = normaliser
    native_buttons: ClassVar[bool] = True  # Block Kit buttons; presses are block_actions
    # bot, user and app-level tokens (the signing secret has no shape of its own)
    secret_patterns: ClassVar[tuple[str, ...]] = (r"xox[abposr]-[A-Za-z0-9-]{10,}",
                                                  r"xapp-[A-Za-z0-9-]{10,}")

    def __init__(self, account: AccountContext, runtime: AccountRuntime, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(account, runtime)
        self.clock = clock
        self.api_base_url = (account.api_base_url or DEFAULT_API).rstrip("/") + "/"
        self.events = SlackEvents(self)
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        scopes = account.info.get("scopes")
        self._granted: list[str] | None = list(scopes) if isinstance(scopes, list) else None

    # ------------------------------------------------------------------ clients

    def http_session(self) -> aiohttp.ClientSession:
        """The connector's one aiohttp session (made inside the running loop, on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._session

    @property
    def web(self) -> AsyncWebClient:
        if self._client is None or self._client.session is not self.http_session():
            self._client = AsyncWebClient(token=self.account.secret("bot_token"),
                                          base_url=self.api_base_url,
                                          session=self.http_session(), retry_handlers=[])
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = self._client = None

    async def _note_scopes(self, headers: Mapping[str, Any] | None) -> None:
        scopes = _scopes(headers)
        if scopes is None or scopes == self._granted:
            return
        self._granted = scopes
        try:
            await self.runtime.save_info({"scopes": scopes})
        except Exception:
            log.warning("slack account %s: could not save the granted scopes", self.account.id,
                        exc_info=True)

    @property
    def can_customize(self) -> bool:
        return self._granted is not None and CUSTOMIZE_SCOPE in self._granted

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> AccountInfo:
        """`auth.test` (https://docs.slack.dev/reference/methods/auth.test): who the token is,
        plus the granted scopes; `bots.info` for the app id when auth.test leaves it out."""
        try:
            resp = await self.web.auth_test()
        except Exception as exc:
            raise connect_error(exc) from exc
        data = resp.data if isinstance(resp.data, dict) else {}
        scopes = _scopes(resp.headers) or []
        self._granted = scopes
        team_id, bot_id = data.get("team_id"), data.get("bot_id")
        if not team_id or not bot_id:
            raise ConnectError("invalid_auth", sentence("invalid_auth"))
        app_id = data.get("app_id") or await self._app_id(bot_id)
        if self.account.mode == "socket":
            await self._check_app_token()
        extra = {"team_id": team_id, "team": data.get("team"), "url": data.get("url"),
                 "bot_user_id": data.get("user_id"), "bot_id": bot_id, "app_id": app_id,
                 "scopes": scopes}
        return AccountInfo(platform_id=f"{team_id}:{app_id or bot_id}",
                           username=data.get("user"), display_name=data.get("team"),
                           extra=extra)

    async def _app_id(self, bot_id: str) -> str | None:
        try:
            resp = await self.web.bots_info(bot=bot_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack account %s: bots.info unavailable (%s)", self.account.id,
                     type(exc).__name__)
            return None
        bot = resp.get("bot")
        return bot.get("app_id") if isinstance(bot, dict) else None

    async def _check_app_token(self) -> None:
        token = self.account.secret("app_token")
        if not token:
            raise ConnectError("invalid_app_token", sentence("invalid_app_token"))
        try:
            await self.web.apps_connections_open(app_token=token)
        except SlackApiError as exc:
            error = connect_error(exc)
            if error.code == "invalid_auth" or exc.response.get("error") in (
                    "not_allowed_token_type", "missing_scope"):
                raise ConnectError("invalid_app_token", sentence("invalid_app_token")) from exc
            raise error from exc
        except Exception as exc:
            raise connect_error(exc) from exc

    def notices(self, snapshot: Mapping[str, Any]) -> list[Notice]:
        """For the account page: where Slack must send events (events mode) or that no
        public URL is needed (socket mode), and, when the stored scopes lack
        chat:write.customize, that replies will carry a signature line instead of the
        agent's name as sender."""
        out: list[Notice] = []
        mode = snapshot.get("mode") or self.account.mode
        if mode == "socket":
            out.append(Notice("notice.socket_mode", "info"))
        elif self.account.webhook_url:
            out.append(Notice("notice.events_url", "info", {"url": self.account.webhook_url}))
        info = snapshot.get("info") or {}
        scopes = info.get("scopes") if isinstance(info, Mapping) else None
        if not isinstance(scopes, list):
            scopes = self._granted
        if scopes is not None and CUSTOMIZE_SCOPE not in scopes:
            out.append(Notice("notice.no_customize_scope", "warning"))
        return out

    # ------------------------------------------------------------------ inbound

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        """Events API (https://docs.slack.dev/apis/events-api/): verify, answer the challenge,
        store through bolt, then 200. A retry (`X-Slack-Retry-Num`) is processed like a first
        delivery: the store is idempotent on `{channel}:{ts}`, so nothing is dropped blindly."""
        if request.method.upper() != "POST":
            return HttpResponse.error(405, "method_not_allowed", "Slack events are POSTed")
        try:
            verify(self.account.secret("signing_secret"), request.headers, request.body,
                   self.clock())
        except SignatureError as exc:
            log.warning("slack account %s: webhook refused: %s", self.account.id, exc.reason)
            return HttpResponse.error(401, "invalid_signature", exc.reason)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            return await self._interactivity(request.body)
        try:
            text = request.body.decode("utf-8")
            payload = json.loads(text)
        except ValueError:
            return HttpResponse.error(400, "invalid_body", "the body is not JSON")
        if not isinstance(payload, dict):
            return HttpResponse.error(400, "invalid_body", "the body is not a JSON object")
        if payload.get("type") == "url_verification":
            return HttpResponse.of_json(200, {"challenge": str(payload.get("challenge", ""))})
        if payload.get("type") == "block_actions":  # Slack sends these form-encoded
            return await self.store_interaction(payload)
        if payload.get("type") != "event_callback":
            log.info("slack account %s: %s payload ignored", self.account.id,
                     payload.get("type"))
            return OK
        try:  # signed but unreadable: answered (Slack would retry a refusal) and logged
            normaliser.normalise(payload, self.account)
        except normaliser.UnreadablePayload as exc:
            log.warning("slack account %s: unreadable event %s: %s", self.account.id,
                        str(payload.get("event_id"))[:40], exc)
            return HttpResponse.of_json(200, {"ok": True, "ignored": True})
        # The body is known to be a JSON object: say so, whatever Content-Type came with it
        # (bolt would otherwise read a body with leading whitespace as a form).
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-type"}
        headers["content-type"] = "application/json"
        try:
            response = await self.events.dispatch(text, headers, self.runtime)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            # bolt reads the envelope (authorizations, enterprise ids) before our listener; a
            # signed envelope it cannot read is the sender's fault, not a reason to retry
            log.warning("slack account %s: unreadable envelope %s: %s", self.account.id,
                        str(payload.get("event_id"))[:40], type(exc).__name__)
            return HttpResponse.of_json(200, {"ok": True, "ignored": True})
        if response.status == 200:
            return OK
        return HttpResponse.error(503, "not_stored",
                                  "the event could not be stored; Slack will retry")

    async def _interactivity(self, body: bytes) -> HttpResponse:
        """An interactivity payload, `payload=<JSON>` form-encoded (the Request URL is the
        same as for events): a button press is stored, then answered 200 with an empty body
        within Slack's 3 seconds
        (https://docs.slack.dev/interactivity/handling-user-interaction/#acknowledgment_response)."""
        try:
            form = parse_qs(body.decode("utf-8"), strict_parsing=True)
            payload = json.loads(form["payload"][0])
        except (ValueError, KeyError, IndexError):
            return HttpResponse.error(400, "invalid_body", "no interactivity payload")
        if not isinstance(payload, dict):
            return HttpResponse.error(400, "invalid_body", "the payload is not a JSON object")
        return await self.store_interaction(payload)

    async def store_interaction(self, payload: dict[str, Any]) -> HttpResponse:
        try:
            result = normaliser.normalise(payload, self.account)
        except normaliser.UnreadablePayload as exc:
            log.warning("slack account %s: unreadable interactivity payload: %s",
                        self.account.id, exc)
            return HttpResponse(200, b"", "text/plain")
        if isinstance(result, Interaction):
            await self.runtime.sink([result])
        return HttpResponse(200, b"", "text/plain")

    def inbound(self) -> SlackSocketSource | None:
        return SlackSocketSource(self) if self.account.mode == "socket" else None

    async def enrich_author(self, author: Author) -> Author | None:
        """The author with name, avatar and locale from `users.info`, cached per account;
        None when Slack has nothing better. The host calls it after storing a new message,
        off the acknowledgement path (see `profiles`)."""
        return await profiles.enrich(self, author)

    # ------------------------------------------------------------------ outbound

    def render(self, identity: AgentIdentity, text: str, context: RenderContext) -> Rendered:
        """With chat:write.customize the reply is posted under the agent's name and avatar
        (https://docs.slack.dev/reference/methods/chat.postMessage#authorship); without it,
        under the app's name with a signature line. The text is escaped for mrkdwn, so an
        agent's `<!channel>` or `<https://x|y>` shows as typed instead of acting."""
        if self.can_customize:
            sender, _ = rendering.fill(SENDER_TEMPLATE, rendering.identity_fields(identity))
            return Rendered(text=escape(rendering.with_greeting(identity, text)),
                            username=sender, icon_url=identity.avatar_url or None,
                            shown_name=sender, buttons=context.buttons)
        return Rendered(text=escape(rendering.with_signature(identity, text)),
                        shown_name=identity.name, buttons=context.buttons)

    def measure(self, text: str, context: RenderContext) -> Measure:
        return Measure(used=len(text), limit=TEXT_LIMIT, unit="characters")

    def send_scope(self, outbound: OutboundMessage) -> str:
        """Slack limits each Web API method per workspace
        (https://docs.slack.dev/apis/web-api/rate-limits): a 429 on chat.postMessage pauses
        replies, not file downloads or profile lookups."""
        return POST_SCOPE

    async def send(self, outbound: OutboundMessage) -> Delivery:
        """`chat.postMessage` into the conversation: a channel thread's replies carry its root
        as `thread_ts`; where the conversation key names no thread (a DM, a channel kept as
        one conversation) the thread comes from the answered message's `reply_route`, set by
        `normalise` (a DM is answered in the DM, in a thread only when the customer wrote in
        one). No history is read back: conversations.replies is 1 call a minute for most
        apps."""
        rendered = outbound.rendered or self.render(
            AgentIdentity(name=outbound.agent_name, title=outbound.agent_title),
            outbound.text, RenderContext(kind=outbound.kind, target=outbound.target))
        channel, _, root = outbound.thread_key.partition(":")
        thread_ts: str | None = root or _route_thread(outbound.reply_route)
        try:
            if outbound.target == "dm" and outbound.kind != "dm" and outbound.reply_to_author:
                opened = await self.web.conversations_open(users=outbound.reply_to_author)
                channel, thread_ts = opened["channel"]["id"], None
            resp = await self.web.chat_postMessage(
                channel=channel, text=rendered.text, thread_ts=thread_ts,
                username=rendered.username, icon_url=rendered.icon_url, link_names=False,
                parse="none", blocks=blocks(rendered.text, outbound.buttons))
        except Exception as exc:
            raise classify(exc, scope=POST_SCOPE) from exc
        await self._note_scopes(resp.headers)
        ts = str(resp["ts"])
        return Delivery(external_id=f"{resp.get('channel') or channel}:{ts}",
                        platform_ts=when(ts))

    async def fetch_attachment(self, attachment: Mapping[str, Any]) -> AttachmentStream:
        """The file's bytes, streamed from Slack with the bot token (see `files`)."""
        return await files.fetch(self, attachment)

    def classify(self, exc: BaseException) -> Exception:
        return classify(exc, scope=POST_SCOPE)

    def _host_allowed(self, url: str) -> bool:
        """The bot token goes only to Slack's own file hosts, or to the configured API host
        (the sandbox)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        api_host = (urlsplit(self.api_base_url).hostname or "").lower()
        if host == api_host:
            return parts.scheme in ("https", urlsplit(self.api_base_url).scheme)
        return parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))
