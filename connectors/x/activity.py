"""X Activity API webhooks: the CRC answer, the signature check, and finding the account.

Both checks use the app's consumer secret (https://docs.x.com/x-api/webhooks/quickstart):
the CRC `GET ?crc_token=T` is answered `{"response_token": "sha256=" + base64(HMAC-SHA256(
consumer_secret, T))}`, and every POST carries `x-twitter-webhooks-signature`, the same HMAC
over the raw body. Webhooks belong to an X *app*; several Switchboard accounts may use one app
(one secret) or several. The URL we register carries `?app=<fingerprint of the consumer key>`
so a request names its app and is checked against that app's secret only; a request without
it (a URL registered by hand) is checked against every account's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from yarl import URL

from connectors.base import AccountDirectory, HttpRequest, HttpResponse

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
APP_PARAM = "app"
EVENT_TYPES = ("post.mention.create", "post.reply.create", "dm.received")


def sign(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def crc_answer(secret: str, crc_token: str) -> dict[str, str]:
    return {"response_token": sign(secret, crc_token.encode())}


def signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    if not given or not secret:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), given.strip().encode())


def app_fingerprint(consumer_key: str) -> str:
    """Names the app in our webhook URL without exposing its key."""
    return hashlib.sha256(consumer_key.encode()).hexdigest()[:16]


def webhook_url(app_webhook_url: str, consumer_key: str) -> str:
    url = URL(app_webhook_url)
    return str(url.update_query({APP_PARAM: app_fingerprint(consumer_key)}))


def first_matching(secrets: Iterable[str], body: bytes, given: str | None) -> str | None:
    """The secret whose signature matches, trying each (every one in constant time)."""
    found = None
    for secret in dict.fromkeys(secrets):
        if signature_ok(secret, body, given) and found is None:
            found = secret
    return found


def target_user(payload: Any) -> str | None:
    """The subscribed user an Activity API delivery is for: `data.filter.user_id` (or the
    unwrapped envelope's `filter.user_id`); the Account Activity API's `for_user_id`."""
    if not isinstance(payload, Mapping):
        return None
    env = payload.get("data") if isinstance(payload.get("data"), Mapping) else payload
    filt = env.get("filter") if isinstance(env, Mapping) else None
    if isinstance(filt, Mapping) and isinstance(filt.get("user_id"), str):
        return str(filt["user_id"])
    user = payload.get("for_user_id")
    return user if isinstance(user, str) else None


def parse_json(body: bytes) -> Any:
    """The body as JSON, or None (the caller answers 400)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _secret_of(connector: Any) -> str:
    account = getattr(connector, "account", None)
    return account.secret("consumer_secret") if account is not None else ""


def _key_of(connector: Any) -> str:
    account = getattr(connector, "account", None)
    return account.secret("consumer_key") if account is not None else ""


async def route(request: HttpRequest, directory: AccountDirectory) -> HttpResponse | Any:
    """The app-level `/webhooks/x`: answer a CRC, refuse a forged POST, or name the account.

    The signature is checked before the body is parsed, against the consumer secret of each
    candidate account (those of the app named by `?app=`, else all X accounts in activity
    mode); the account is then taken from the payload and must be one whose secret matched,
    so one app cannot deliver events into another app's account."""
    accounts = [c for c in await directory.connectors()
                if getattr(getattr(c, "account", None), "mode", None) == "activity"]
    app = request.query.get(APP_PARAM)
    if app:
        accounts = [c for c in accounts if app_fingerprint(_key_of(c)) == app]
    if not accounts:
        return HttpResponse.error(404, "no_account", "no X account in activity mode here")
    if request.method == "GET":
        token = request.query.get("crc_token")
        if not token:
            return HttpResponse.error(400, "no_crc_token", "missing crc_token")
        secrets = list(dict.fromkeys(_secret_of(c) for c in accounts))
        if len(secrets) > 1:
            log.warning("x: a CRC without ?app= and accounts of %d apps: answering for the "
                        "first; register the webhook through Switchboard to name the app",
                        len(secrets))
        return HttpResponse.of_json(200, crc_answer(secrets[0], token))
    if request.method != "POST":
        return HttpResponse.error(405, "method_not_allowed", "GET (CRC) or POST only")
    given = request.headers.get(SIGNATURE_HEADER)
    secret = first_matching((_secret_of(c) for c in accounts), request.body, given)
    if secret is None:
        return HttpResponse.error(401, "bad_signature", "missing or wrong signature")
    payload = parse_json(request.body)
    if payload is None:
        return HttpResponse.error(400, "bad_json", "body is not JSON")
    user = target_user(payload)
    connector = await directory.by_platform_id(user) if user else None
    if connector is None or _secret_of(connector) != secret:
        return HttpResponse.of_json(200, {"ok": True, "ignored": "no account for this event"})
    return connector
