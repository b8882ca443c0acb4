"""X I/O through tweepy's `AsyncClient`: check, send, polling, Activity API webhooks.

tweepy's host is fixed in code; every request goes through `RoutedSession` (session.py) to the
account's `api_base_url`. tweepy never sleeps on a rate limit here (`wait_on_rate_limit=False`):
a 429 becomes `RateLimited` for the host to schedule. The client returns the raw
`aiohttp.ClientResponse` so the rate-limit headers of every answer are read, and the JSON is
normalised by our own pure functions (normalise.py) rather than tweepy's models.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import aiohttp
import tweepy
from tweepy.asynchronous import AsyncClient

from connectors import base
from connectors.base import (
    AccountContext,
    AccountDirectory,
    AccountInfo,
    AccountRuntime,
    ConnectError,
    CredentialField,
    HttpRequest,
    HttpResponse,
    Notice,
    OptionField,
)
from connectors.x import activity, budget, media, subscriptions, text
from connectors.x import normalise as normaliser
from connectors.x.errors import classify, problem_of
from connectors.x.polling import XPollingSource
from connectors.x.session import OAuth1Keys, RateLimit, RoutedSession
from connectors.x.strings import STRINGS
from inbox.models import (
    AgentIdentity,
    CredentialsRefused,
    Delivery,
    DeliveryError,
    Ignored,
    Measure,
    OutboundMessage,
    PermanentError,
    RenderContext,
    Rendered,
    TransientError,
)

log = logging.getLogger(__name__)

_CALL_ERRORS = (tweepy.TweepyException, aiohttp.ClientError, asyncio.TimeoutError, OSError,
                ValueError)
_BILLED_EVENTS = {"post.mention.create": "post_reads", "post.reply.create": "post_reads",
                  "post.create": "post_reads", "dm.received": "dm_reads"}


async def _problem(exc: BaseException) -> dict[str, Any]:
    """The error body tweepy already read (its exceptions keep `detail`, not `type`)."""
    resp = getattr(exc, "response", None)
    if not isinstance(resp, aiohttp.ClientResponse):
        return {}
    try:
        return problem_of(await resp.json(content_type=None))
    except (ValueError, aiohttp.ClientError):
        return {}


class XConnector(base.ConnectorBase):
    platform: ClassVar[str] = "x"
    modes: ClassVar[tuple[str, ...]] = ("polling", "activity")
    webhook_modes: ClassVar[tuple[str, ...]] = ("activity",)
    app_webhook: ClassVar[bool] = True
    ack_deadline: ClassVar[float] = 10.0  # https://docs.x.com/x-api/webhooks/introduction
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = STRINGS
    normaliser: ClassVar[Any] = normaliser
    # an OAuth 1.0a access token ("<user id>-<40>"), the 45-50 character secrets, an app's
    # bearer token; a consumer key (25 characters) has no shape that would not mask ids too
    secret_patterns: ClassVar[tuple[str, ...]] = (
        r"\b\d{3,20}-[A-Za-z0-9]{30,50}\b", r"\b[A-Za-z0-9]{45,50}\b",
        r"AAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,}")
    credential_fields: ClassVar[tuple[CredentialField, ...]] = tuple(
        CredentialField(name, STRINGS["en"][f"cred.{name}"], secret=True,
                        pattern=r"^\S{10,200}$", help=STRINGS["en"][f"cred.{name}.help"])
        for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret"))
    option_fields: ClassVar[tuple[OptionField, ...]] = (
        OptionField("poll_interval_s", STRINGS["en"]["option.poll_interval_s"], type="int",
                    default=60, minimum=1, maximum=86_400,
                    help=STRINGS["en"]["option.poll_interval_s.help"]),
        OptionField("monthly_budget_usd", STRINGS["en"]["option.monthly_budget_usd"],
                    type="float", default=None, minimum=0,
                    help=STRINGS["en"]["option.monthly_budget_usd.help"]),
        OptionField("signature_template", STRINGS["en"]["option.signature_template"],
                    type="str", default=text.DEFAULT_SIGNATURE,
                    help=STRINGS["en"]["option.signature_template.help"]),
        *(OptionField(option, STRINGS["en"][f"option.{option}"], type="float",
                      default=budget.DEFAULT_PRICES[key], minimum=0, maximum=100,
                      help=STRINGS["en"][f"option.{option}.help"])
          for option, key in budget.PRICE_OPTIONS.items()),
    )

    def __init__(self, account: AccountContext, runtime: AccountRuntime) -> None:
        super().__init__(account, runtime)
        self.keys = OAuth1Keys(account.secret("consumer_key"), account.secret("consumer_secret"),
                               account.secret("access_token"),
                               account.secret("access_token_secret"))
        self.session = RoutedSession(account.api_base_url, keys=self.keys)
        self.client = self._client()
        self.user_id: str | None = account.platform_id
        self.clock: Callable[[], float] = time.time
        self.limits: dict[str, RateLimit] = {}
        self._source: XPollingSource | None = None

    def _client(self, bearer: str | None = None) -> AsyncClient:
        client = AsyncClient(bearer_token=bearer, consumer_key=self.keys.consumer_key,
                             consumer_secret=self.keys.consumer_secret,
                             access_token=self.keys.access_token,
                             access_token_secret=self.keys.access_token_secret,
                             return_type=aiohttp.ClientResponse, wait_on_rate_limit=False)
        client.session = self.session  # our routed session: see session.py
        return client

    def prices(self, options: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Today's rates, or the account's own where its options set them."""
        return budget.prices_of(self.account.options if options is None else options)

    # ------------------------------------------------------------------ calls

    async def call(self, scope: str, fn: Callable[..., Awaitable[Any]], *args: Any,
                   now: float | None = None, **kwargs: Any) -> tuple[dict[str, Any], RateLimit]:
        """One tweepy call: its JSON body and rate-limit headers, or a typed error."""
        try:
            resp = await fn(*args, **kwargs)
            body = await resp.json(content_type=None) if resp.status != 204 else {}
        except _CALL_ERRORS as exc:
            raise classify(exc, await _problem(exc), now=now or self.clock(),
                           scope=scope) from exc
        limit = RateLimit.of(resp.headers)
        self.limits[scope] = limit
        return (body if isinstance(body, dict) else {}), limit

    async def _record(self, counts: Mapping[str, int]) -> None:
        counts = {k: v for k, v in counts.items() if v}
        if not counts:
            return
        try:
            await self.runtime.record_usage(counts)
        except Exception:  # usage is bookkeeping: a failed count must not fail a delivery
            log.exception("x account %s: could not record usage", self.account.id)

    # ------------------------------------------------------------------ lifecycle

    async def check(self) -> AccountInfo:
        try:
            body, _ = await self.call("users", self.client.get_me,
                                      user_fields=["profile_image_url"], user_auth=True)
        except CredentialsRefused as exc:
            raise ConnectError("invalid_auth", exc.human) from exc
        except TransientError as exc:
            raise ConnectError("cannot_connect", exc.human) from exc
        except DeliveryError as exc:
            raise ConnectError("unknown", exc.human) from exc
        data = body.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ConnectError("unknown", "X's answer to /2/users/me had no user id.")
        self.user_id = data["id"]
        return AccountInfo(platform_id=data["id"], username=data.get("username"),
                           display_name=data.get("name"),
                           extra={"username": data.get("username"),
                                  "profile_image_url": data.get("profile_image_url")})

    async def on_create(self) -> None:
        if self.account.mode == "activity":
            await subscriptions.subscribe(self)

    async def on_delete(self) -> None:
        if self.account.mode == "activity":
            await subscriptions.unsubscribe(self)

    async def close(self) -> None:
        await self.session.close()

    def inbound(self) -> XPollingSource | None:
        if self.account.mode != "polling":
            return None
        if self._source is None:
            self._source = XPollingSource(self)
        return self._source

    # ------------------------------------------------------------------ webhooks

    @classmethod
    async def route_app_webhook(cls, request: HttpRequest, directory: AccountDirectory,
                                ) -> HttpResponse | base.Connector:
        return await activity.route(request, directory)

    async def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        secret = self.keys.consumer_secret
        if request.method == "GET":
            token = request.query.get("crc_token")
            if not token:
                return HttpResponse.error(400, "no_crc_token", "missing crc_token")
            return HttpResponse.of_json(200, activity.crc_answer(secret, token))
        if not activity.signature_ok(secret, request.body,
                                     request.headers.get(activity.SIGNATURE_HEADER)):
            return HttpResponse.error(401, "bad_signature", "missing or wrong signature")
        payload = activity.parse_json(request.body)
        if payload is None:
            return HttpResponse.error(400, "bad_json", "body is not JSON")
        try:
            result = normaliser.normalise(payload, self.account)
        except normaliser.UnreadablePayload as exc:
            return HttpResponse.error(400, "unreadable", str(exc))
        kind = normaliser.dispatch_key(payload)
        if kind in _BILLED_EVENTS:
            await self._record({_BILLED_EVENTS[kind]: 1})
        if isinstance(result, Ignored):
            return HttpResponse.of_json(200, {"ok": True, "ignored": result.reason})
        events = result if isinstance(result, list) else [result]
        stored = await self.runtime.sink(events)
        return HttpResponse.of_json(200, {"ok": True, "stored": sum(s.created for s in stored)})

    # ------------------------------------------------------------------ outbound

    def render(self, identity: AgentIdentity, text_: str, context: RenderContext) -> Rendered:
        return text.render(identity, text_, context, options=self.account.options)

    def measure(self, text_: str, context: RenderContext) -> Measure:
        return text.measure(text_, context)

    def send_scope(self, outbound: OutboundMessage) -> str:
        """X limits posts and DM sends separately (https://docs.x.com/x-api/fundamentals/
        rate-limits), so a 429 on one holds back only replies of that kind."""
        return "dm" if text.is_dm(RenderContext(kind=outbound.kind, target=outbound.target)) \
            else "tweets"

    async def send(self, outbound: OutboundMessage) -> Delivery:
        context = RenderContext(kind=outbound.kind, target=outbound.target)
        size = self.measure(outbound.text, context)
        if not size.fits:
            raise PermanentError(STRINGS["en"]["error.too_long"].format(over=size.over),
                                 code="too_long")
        if text.is_dm(context):
            return await self._send_dm(outbound)
        if not outbound.reply_to:
            raise PermanentError(STRINGS["en"]["error.no_reply_target"], code="no_reply_target")
        body, _ = await self.call("tweets", self.client.create_tweet, text=outbound.text,
                                  in_reply_to_tweet_id=outbound.reply_to, user_auth=True)
        data = body.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise TransientError("X accepted the post but returned no id.", code="unexpected")
        await self._record({"posts_with_url" if text.has_url(outbound.text) else "posts": 1})
        return Delivery(external_id=data["id"])

    def _participant(self, outbound: OutboundMessage) -> str | None:
        if outbound.reply_to_author:
            return outbound.reply_to_author
        ids = outbound.thread_key.split("-")
        if len(ids) == 2 and self.user_id in ids:  # a one-to-one DM conversation id
            return ids[0] if ids[1] == self.user_id else ids[1]
        return None

    async def _send_dm(self, outbound: OutboundMessage) -> Delivery:
        participant = self._participant(outbound)
        if not participant:
            raise PermanentError(STRINGS["en"]["error.no_recipient"], code="no_recipient")
        body, _ = await self.call("dm", self.client.create_direct_message,
                                  participant_id=participant, text=outbound.text,
                                  user_auth=True)
        data = body.get("data")
        if not isinstance(data, Mapping) or not isinstance(data.get("dm_event_id"), str):
            raise TransientError("X accepted the DM but returned no id.", code="unexpected")
        await self._record({"dms": 1})
        return Delivery(external_id=data["dm_event_id"])

    async def fetch_attachment(self, attachment: Mapping[str, Any]) -> base.AttachmentStream:
        """A post's or DM's media, streamed from X's media hosts (see `media`)."""
        return await media.fetch(self, attachment)

    # ------------------------------------------------------------------ notices

    def notices(self, snapshot: Mapping[str, Any]) -> list[Notice]:
        """This month's estimated spend from the stored usage counters and the price table,
        against the budget when one is set, and whether polling slowed down to keep to it."""
        usage = snapshot.get("usage") or {}
        options = snapshot.get("options")
        options = options if isinstance(options, Mapping) else self.account.options
        table = self.prices(options)
        spent = budget.spend(usage, table)
        limit = options.get("monthly_budget_usd")
        values = {"spent": f"{spent:.2f}", "budget": f"{float(limit):.2f}" if limit else "",
                  "reads": sum(int(usage.get(k, 0)) for k in budget.READ_KEYS),
                  "writes": sum(int(usage.get(k, 0)) for k in budget.WRITE_KEYS)}
        if not limit:
            return [Notice("notice.spend", "info", values)]
        if spent >= float(limit):  # polling slows down by itself; pushed events keep coming
            key = "notice.budget_exceeded" if snapshot.get("mode", self.account.mode) \
                == "polling" else "notice.budget_exceeded_activity"
            return [Notice(key, "warning", values)]
        found = [Notice("notice.budget", "info", values)]
        info = snapshot.get("info")
        pace = info.get("budget_pace") if isinstance(info, Mapping) else None
        if isinstance(pace, Mapping) and pace.get("stretched") and not pace.get("exhausted"):
            found.append(Notice("notice.budget_slowed", "info", {
                **values, "minutes": max(1, round(float(pace.get("wait_s", 0)) / 60))}))
        return found
