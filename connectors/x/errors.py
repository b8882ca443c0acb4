"""tweepy / aiohttp exceptions → the typed delivery errors of `inbox.models`.

X v2 errors are RFC 7807 problems `{"title", "detail", "type", "status"}`
(https://docs.x.com/x-api/fundamentals/response-codes-and-errors); v1.1-era answers still
carry `{"errors": [{"code", "message"}]}`. tweepy keeps the v1.1 codes (`api_codes`) and the
`detail` (`api_messages`) but drops `type`, so the connector re-reads the problem from the
response body and hands it in. The order is specific-first: the status class, then the
problem `type`, then a v1.1 code, and only where X gives neither (`type: "about:blank"`, as
for the reply restriction and duplicate posts) the `detail` sentence itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from tweepy import errors as tw

from connectors.x.strings import STRINGS
from inbox.models import (
    CredentialsRefused,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)

PROBLEM = "https://api.x.com/2/problems/"
PROBLEM_OLD = "https://api.twitter.com/2/problems/"

# The self-serve reply rule of 2026-02-23: a reply is allowed only when the post's author
# mentioned or quoted the account (https://docs.x.com/x-api/posts/manage-tweets/integrate,
# "Reply restrictions"). X answers 403 with `type: about:blank`, so this sentence is the only
# discriminator it gives.
REPLY_RESTRICTED = "reply to this conversation is not allowed"
DUPLICATE = "duplicate content"

# v1.1 error codes (https://developer.x.com/en/support/x-api/error-troubleshooting).
_V1_CODES: dict[int, str] = {
    187: "duplicate", 186: "rejected_too_long", 385: "reply_target_gone", 433: "reply_restricted",
    150: "dm_not_allowed", 349: "dm_not_allowed", 89: "credentials_refused",
    32: "credentials_refused", 88: "rate_limited", 261: "app_permissions",
}

# The sentences the agent sees on a failed reply are the connector's English strings (the UI
# shows `error.<code>` from `strings` in the agent's language).
HUMAN: dict[str, str] = {
    code: STRINGS["en"][f"error.{code}"] for code in (
        "reply_restricted", "duplicate", "dm_not_allowed", "rejected_too_long", "reply_target_gone",
        "not_found", "app_permissions", "client_forbidden", "not_authorized", "bad_request",
        "forbidden", "payment_required", "credentials_refused")}


def problem_of(body: Any) -> dict[str, Any]:
    return dict(body) if isinstance(body, Mapping) else {}


def _ptype(problem: Mapping[str, Any]) -> str:
    value = problem.get("type")
    if isinstance(value, str):
        for prefix in (PROBLEM, PROBLEM_OLD):
            if value.startswith(prefix):
                return value[len(prefix):]
    return ""


def _permanent(code: str, detail: str | None = None, **kw: Any) -> PermanentError:
    human = HUMAN.get(code, HUMAN["forbidden"])
    if detail and code in ("bad_request", "forbidden"):
        human = f"{human} X said: {detail}"
    return PermanentError(human, code=code, **kw)


def _retry_after(headers: Mapping[str, str] | None, now: float, default: float) -> float:
    reset = (headers or {}).get("x-rate-limit-reset")
    try:
        return max(1.0, float(reset) - now) if reset is not None else default
    except ValueError:
        return default


def _status(exc: Exception) -> int:
    resp = getattr(exc, "response", None)
    status = getattr(resp, "status", None)
    if status is None:
        status = getattr(exc, "status", 0)  # aiohttp.ClientResponseError
    return int(status or 0)


def classify(exc: BaseException, problem: Mapping[str, Any] | None = None, *,
             now: float | None = None, scope: str = "account") -> DeliveryError:
    """One exception of a call to X → a typed error; `scope` names the endpoint family
    ("tweets", "dm", "mentions", "dm_read") that a 429 limits, `now` is epoch seconds."""
    if isinstance(exc, DeliveryError):
        return exc
    now = time.time() if now is None else now
    problem = problem or {}
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    if isinstance(exc, tw.HTTPException):
        if not detail and exc.api_messages:
            detail = str(exc.api_messages[0])
        headers = getattr(exc.response, "headers", None)
        return _http(exc, _status(exc), _ptype(problem), list(exc.api_codes), detail,
                     headers, now=now, scope=scope)
    if isinstance(exc, aiohttp.ClientResponseError):  # a non-JSON error body (a proxy's 502)
        return _http(exc, exc.status, "", [], None, exc.headers, now=now, scope=scope)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TransientError("X did not answer in time.", code="timeout")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransientError("X could not be reached.", code="network")
    return TransientError(f"Unexpected error while talking to X: {type(exc).__name__}",
                          code="unknown")


def _http(exc: BaseException, status: int, ptype: str, codes: list[Any], detail: str | None,
          headers: Mapping[str, str] | None, *, now: float, scope: str) -> DeliveryError:
    text = (detail or "").lower()
    v1 = next((_V1_CODES[c] for c in codes if isinstance(c, int) and c in _V1_CODES), None)
    if status == 429 or v1 == "rate_limited":
        if ptype == "usage-capped":
            return RateLimited(_retry_after(headers, now, 3600.0),
                               "X's usage cap for this app is reached.", scope="account")
        return RateLimited(_retry_after(headers, now, 60.0), "X asked us to slow down.",
                           scope=scope)
    if status == 401 or v1 == "credentials_refused":
        return CredentialsRefused(HUMAN["credentials_refused"])
    if status >= 500:
        return TransientError(f"X had a server error ({status}).", code="server")
    if status == 402:
        return _permanent("payment_required")
    if ptype in ("oauth1-permissions", "client-forbidden"):
        return _permanent("app_permissions" if ptype == "oauth1-permissions"
                          else "client_forbidden")
    if ptype == "not-authorized-for-resource":
        return _permanent("not_authorized")
    if ptype == "resource-not-found" or status == 404:
        return _permanent("not_found")
    if v1 is not None:
        alternatives = ("dm",) if v1 == "reply_restricted" else ()
        return _permanent(v1, alternatives=alternatives)
    if status == 403:
        if REPLY_RESTRICTED in text:
            return _permanent("reply_restricted", alternatives=("dm",))
        if DUPLICATE in text:
            return _permanent("duplicate")
        if scope == "dm":
            return _permanent("dm_not_allowed")
        return _permanent("forbidden", detail)
    if status == 400 and "too long" in text:
        return _permanent("rejected_too_long")
    if 400 <= status < 500:
        return _permanent("bad_request", detail)
    return TransientError(f"X answered unexpectedly ({status}).", code="unexpected")
