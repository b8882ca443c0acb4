"""Subscribing an account to the X Activity API (on_create) and back out (on_delete).

Events reach a webhook only through a subscription naming it
(https://docs.x.com/x-api/activity/quickstart): register the app's webhook once
(`POST /2/webhooks`, https://docs.x.com/x-api/webhooks/quickstart — a second account of the
same app finds it with `GET /2/webhooks`), then one `POST /2/activity/subscriptions` per event
type with `filter.user_id` = the account. The OpenAPI document (https://api.x.com/2/openapi.json)
allows user context (OAuth 1.0a) for both POSTs but only an app-only Bearer token for
`GET /2/webhooks` and `DELETE /2/activity/subscriptions/:id`; that token comes from
`POST /oauth2/token` with the consumer key and secret
(https://docs.x.com/fundamentals/authentication/oauth-2-0/application-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from connectors.base import ConnectError
from connectors.x import activity
from inbox.models import DeliveryError, PermanentError

if TYPE_CHECKING:
    from connectors.x.connector import XConnector

TOKEN_ROUTE = "https://api.twitter.com/oauth2/token"  # noqa: S105 - a URL


async def bearer_client(conn: XConnector) -> Any:
    try:
        basic = aiohttp.encode_basic_auth(conn.keys.consumer_key, conn.keys.consumer_secret)
        async with conn.session.request(
                "POST", TOKEN_ROUTE, data={"grant_type": "client_credentials"},
                headers={"Authorization": basic}) as resp:
            body = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ConnectError("cannot_connect", "Could not reach X for an app token.") from exc
    token = body.get("access_token") if isinstance(body, Mapping) else None
    if status != 200 or not isinstance(token, str):
        raise ConnectError("invalid_auth", "X refused the app's consumer key and secret.")
    return conn._client(bearer=token)


def _data_list(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = body.get("data")
    if isinstance(data, Mapping):
        data = [data]
    return [d for d in data if isinstance(d, Mapping)] if isinstance(data, list) else []


async def _webhook_id(conn: XConnector, url: str) -> str:
    try:
        body, _ = await conn.call("webhooks", conn.client.request, "POST", "/2/webhooks",
                                  params={}, json={"url": url}, user_auth=True)
        found = _data_list(body)
        if found and isinstance(found[0].get("id"), str):
            return str(found[0]["id"])
    except PermanentError:
        pass  # DuplicateUrlFailed: another account of this app registered it already
    app = await bearer_client(conn)
    body, _ = await conn.call("webhooks", app.request, "GET", "/2/webhooks", params={},
                              user_auth=False)
    for hook in _data_list(body):
        if hook.get("url") == url and isinstance(hook.get("id"), str):
            return str(hook["id"])
    raise ConnectError("activity_setup", "X did not register the webhook URL.")


async def _existing(conn: XConnector, user_id: str) -> dict[str, str]:
    body, _ = await conn.call("activity", conn.client.request, "GET",
                              "/2/activity/subscriptions", params={}, user_auth=True)
    out: dict[str, str] = {}
    for sub in _data_list(body):
        filt = sub.get("filter") if isinstance(sub.get("filter"), Mapping) else {}
        if filt.get("user_id") == user_id and sub.get("event_type") in activity.EVENT_TYPES:
            out[str(sub["event_type"])] = str(sub.get("subscription_id"))
    return out


async def subscribe(conn: XConnector) -> None:
    if not conn.account.app_webhook_url:
        raise ConnectError("activity_setup", "Switchboard has no public webhook URL for X.")
    try:
        user_id = conn.user_id or (await conn.check()).platform_id
        url = activity.webhook_url(conn.account.app_webhook_url, conn.keys.consumer_key)
        hook = await _webhook_id(conn, url)
        subs = await _existing(conn, user_id)
        for event_type in activity.EVENT_TYPES:
            if event_type in subs:
                continue
            body, _ = await conn.call(
                "activity", conn.client.request, "POST", "/2/activity/subscriptions",
                params={}, json={"event_type": event_type, "filter": {"user_id": user_id},
                                 "tag": f"switchboard {conn.account.id}", "webhook_id": hook},
                user_auth=True)
            created = _data_list(body)
            if created:
                subs[event_type] = str(created[0].get("subscription_id"))
    except DeliveryError as exc:
        raise ConnectError("activity_setup", exc.human) from exc
    await conn.runtime.save_info({"activity": {"webhook_id": hook, "webhook_url": url,
                                               "subscriptions": subs}})


async def unsubscribe(conn: XConnector) -> None:
    stored = conn.account.info.get("activity") if conn.account.info else None
    subs = stored.get("subscriptions") if isinstance(stored, Mapping) else None
    try:
        if not isinstance(subs, Mapping) and conn.user_id:
            subs = await _existing(conn, conn.user_id)
        if not subs:
            return
        app = await bearer_client(conn)
        for sub_id in subs.values():
            try:
                await conn.call("activity", app.request, "DELETE",
                                f"/2/activity/subscriptions/{sub_id}", params={},
                                user_auth=False)
            except PermanentError as exc:
                if exc.code != "not_found":
                    raise
    except DeliveryError as exc:
        raise ConnectError("activity_setup", exc.human) from exc
