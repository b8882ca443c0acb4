"""Socket Mode inbound (https://docs.slack.dev/apis/events-api/using-socket-mode/): the
`SessionSource` the host runs while it holds the account's lease.

slack-sdk's aiohttp `SocketModeClient` opens the session: `apps.connections.open` with the
app-level token on the account's API base URL, then the websocket URL it returns (the
sandbox's, in tests and the demo). Each `events_api` envelope goes through the account's bolt
app; it is acknowledged only when bolt answered 200, i.e. after `runtime.sink` returned. No ack
means Slack sends the envelope again (with `retry_attempt` raised; note that a first delivery
already says `retry_attempt: 0`, so it says nothing about duplicates: the store deduplicates).

The client reconnects by itself; `run` returns control to the host (by raising) when the
session stays down longer than `reconnect_grace`, so the host's backoff and health apply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from connectors.base import AccountRuntime
from connectors.slack.errors import CREDENTIAL_CODES, classify, sentence, slack_code
from inbox.models import CredentialsRefused

if TYPE_CHECKING:
    from connectors.slack.connector import SlackConnector

log = logging.getLogger(__name__)


class SocketSessionLost(ConnectionError):
    """The websocket stayed down past the grace period: the host restarts the session."""


def _refused(exc: SlackApiError) -> bool:
    return slack_code(exc) in CREDENTIAL_CODES | {"not_allowed_token_type"}


class _Client(SocketModeClient):
    """slack-sdk's client, noting when Slack refuses the app-level token: its own reconnect
    loop only logs that and tries again forever, and the admin would never hear of it."""

    refused: SlackApiError | None = None

    async def issue_new_wss_url(self) -> str:
        try:
            url: str = await super().issue_new_wss_url()
        except SlackApiError as exc:
            if _refused(exc):
                self.refused = exc
            raise
        self.refused = None
        return url


def _token_refused(exc: SlackApiError) -> CredentialsRefused:
    refusal = CredentialsRefused(sentence("invalid_app_token"), code="invalid_app_token")
    refusal.__cause__ = exc
    return refusal


class SlackSocketSource:
    name = "socket"

    def __init__(self, connector: SlackConnector, *, ping_interval: float = 10.0,
                 connect_timeout: float = 30.0, reconnect_grace: float = 60.0) -> None:
        self.connector = connector
        self.ping_interval = ping_interval
        self.connect_timeout = connect_timeout
        self.reconnect_grace = reconnect_grace
        self.client: _Client | None = None

    async def run(self, runtime: AccountRuntime, ready: Callable[[], Awaitable[None]]) -> None:
        account = self.connector.account
        web_client = AsyncWebClient(base_url=self.connector.api_base_url, retry_handlers=[],
                                    session=self.connector.http_session())
        client = _Client(app_token=account.secret("app_token"), web_client=web_client,
                         ping_interval=self.ping_interval,
                         logger=logging.getLogger("connectors.slack.socket_mode"))
        self.client = client

        async def handle(sm_client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
            await self._handle(sm_client, req, runtime)

        client.socket_mode_request_listeners.append(handle)
        try:
            # Asked here rather than inside connect(), which retries forever: a refused app
            # token must reach the host as such, which marks the account `needs_reauth`.
            try:
                client.wss_uri = await client.issue_new_wss_url()
            except SlackApiError as exc:
                if _refused(exc):
                    raise _token_refused(exc) from exc
                raise classify(exc, scope=self.name) from exc
            async with asyncio.timeout(self.connect_timeout):
                await client.connect()
            await ready()
            await self._watch(client)
        finally:
            self.client = None
            await client.close()

    async def _watch(self, client: _Client) -> None:
        down_since: float | None = None
        while not client.closed:
            await asyncio.sleep(min(1.0, self.reconnect_grace / 4))
            if await client.is_connected():
                down_since = None
                continue
            if client.refused is not None:  # the token was revoked while we were connected
                raise _token_refused(client.refused)
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > self.reconnect_grace:
                raise SocketSessionLost(
                    f"Socket Mode session down for more than {self.reconnect_grace:.0f} s")

    async def _handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest,
                      runtime: AccountRuntime) -> None:
        if req.type == "interactive" and isinstance(req.payload, dict):
            # a button press: stored, then acknowledged (unacknowledged on failure, so Slack
            # sends it again)
            await self.connector.store_interaction(req.payload)
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
            return
        if req.type != "events_api":
            # Slash commands and other interactivity are not ours: acknowledge so Slack does
            # not keep resending, and store nothing.
            log.info("slack account %s: socket envelope of type %s ignored",
                     self.connector.account.id, req.type)
            await client.send_socket_mode_response(SocketModeResponse(req.envelope_id))
            return
        started = time.time()
        response = await self.connector.events.dispatch(
            req.payload, build_headers(req) or {}, runtime, mode="socket_mode")
        # bolt's helper acks only a 200; anything else is left unacknowledged on purpose.
        await send_async_response(client, req, response, started)
        if response.status != 200:
            log.warning("slack account %s: envelope %s not stored (status %s); Slack will "
                        "deliver it again", self.connector.account.id, req.envelope_id,
                        response.status)
