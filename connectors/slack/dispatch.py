"""The account's slack-bolt `AsyncApp`: a verified Events API payload in, sink calls out.

One `AsyncApp` per connector, built without its own server: the connector (HTTP) and the
Socket Mode source hand it `AsyncBoltRequest`s through `async_dispatch`
(https://docs.slack.dev/tools/bolt-python/concepts/adapters/ explains the adapters; ours is
this module). Settings and why:

- `process_before_response=True`: the answer to Slack (HTTP 200, or the Socket Mode ack) is
  given only after the listener ran, i.e. after `runtime.sink` returned; a failing sink makes
  bolt answer 500 (no ack), so Slack delivers again. Nothing is acknowledged that is not stored.
- request verification off in bolt: `signing.verify` already ran on the raw bytes, with the
  connector's clock, before anything was parsed (Socket Mode has no signature at all).
- url_verification, ssl_check and "ignore own events" off: the connector answers the challenge
  itself, and `normalise` is the one place that decides what is our own message.
- `authorize` from the account's stored ids: no `auth.test` call inside Slack's 3 seconds.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from connectors.base import AccountRuntime
from connectors.slack.errors import sentence
from connectors.slack.normalise import UnreadablePayload, describe, normalise
from inbox.models import Ignored

if TYPE_CHECKING:
    from connectors.slack.connector import SlackConnector

log = logging.getLogger(__name__)
RUNTIME_KEY = "switchboard_runtime"
OUTCOME_KEY = "switchboard_outcome"


class SlackEvents:
    def __init__(self, connector: SlackConnector) -> None:
        self.connector = connector
        self._app: AsyncApp | None = None

    def app(self) -> AsyncApp:
        if self._app is None:
            account = self.connector.account
            # bolt makes per-request clients from this one (sharing its session); our
            # listeners never call Slack, so it carries no token.
            client = AsyncWebClient(base_url=self.connector.api_base_url,
                                    session=self.connector.http_session(), retry_handlers=[])

            # bolt injects arguments by parameter name, so plain functions, not methods
            async def authorize(enterprise_id: str | None, team_id: str | None,
                                user_id: str | None) -> AuthorizeResult:
                return self._authorize(enterprise_id, team_id, user_id)

            async def on_event(body: dict[str, Any], context: dict[str, Any]) -> None:
                await self._on_event(body, context)

            self._app = AsyncApp(
                name=f"switchboard-slack-{account.id}", client=client,
                process_before_response=True, authorize=authorize,
                request_verification_enabled=False, ignoring_self_events_enabled=False,
                ssl_check_enabled=False, url_verification_enabled=False,
                logger=logging.getLogger("connectors.slack.bolt"))
            self._app.event(re.compile(r".+"))(on_event)
        return self._app

    async def dispatch(self, body: str | dict[str, Any], headers: Mapping[str, str],
                       runtime: AccountRuntime, *, mode: str = "http") -> BoltResponse:
        """Run one payload through bolt; 200 only once its events are stored."""
        request = AsyncBoltRequest(body=body, headers=dict(headers), mode=mode,
                                   context={RUNTIME_KEY: runtime})
        retry = request.headers.get("x-slack-retry-num", [None])[0]
        if retry not in (None, "0"):
            # A redelivery is handled like a first delivery: the store deduplicates.
            log.info("slack account %s: redelivery %s (%s)", self.connector.account.id, retry,
                     request.headers.get("x-slack-retry-reason", [""])[0])
        return await self.app().async_dispatch(request)

    def _authorize(self, enterprise_id: str | None, team_id: str | None,
                   user_id: str | None) -> AuthorizeResult:
        info = self.connector.account.info
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id or info.get(
            "team_id"), bot_user_id=info.get("bot_user_id"), bot_id=info.get("bot_id"),
            bot_token=self.connector.account.secret("bot_token") or None, user_id=user_id)

    async def _on_event(self, body: dict[str, Any], context: dict[str, Any]) -> None:
        runtime: AccountRuntime = context.get(RUNTIME_KEY) or self.connector.runtime
        account = self.connector.account
        try:
            result = normalise(body, account)
        except UnreadablePayload as exc:
            # Signed by Slack but unreadable: a retry brings the same bytes, so answer 200
            # (Slack disables apps whose deliveries keep failing) and keep it in the log.
            log.error("slack account %s: unreadable event %s (%s): %s", account.id,
                      body.get("event_id"), describe(body), exc)
            log.warning("slack account %s: unreadable payload: %s", account.id,
                        json.dumps({k: v for k, v in body.items() if k != "token"},
                                   ensure_ascii=False)[:4000])
            context[OUTCOME_KEY] = Ignored(f"unreadable: {exc}")
            return
        if isinstance(result, Ignored):
            await self._note_revocation(runtime, body)
            log.debug("slack account %s: %s ignored: %s", account.id, describe(body),
                      result.reason)
            context[OUTCOME_KEY] = result
            return
        events = list(result) if isinstance(result, Sequence) else [result]
        context[OUTCOME_KEY] = await runtime.sink(events)

    async def _note_revocation(self, runtime: AccountRuntime, body: dict[str, Any]) -> None:
        """`app_uninstalled` / `tokens_revoked` (https://docs.slack.dev/reference/events/tokens_revoked/):
        the bot token is dead; say so now instead of at the next failed reply."""
        event = body.get("event")
        kind = event.get("type") if isinstance(event, Mapping) else None
        if kind == "tokens_revoked":
            tokens = event.get("tokens")
            bots = tokens.get("bot") if isinstance(tokens, Mapping) else None
            ours = self.connector.account.info.get("bot_user_id")
            if ours and isinstance(bots, list) and ours not in bots:
                return
        elif kind != "app_uninstalled":
            return
        await runtime.report_health("needs_reauth", sentence("token_revoked"),
                                    code="token_revoked")
