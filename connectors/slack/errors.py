"""Slack failures → the typed send errors (`RateLimited`, `TransientError`, `PermanentError`,
`CredentialsRefused`) and `check()`'s `ConnectError`.

Slack names every failure with a code in `{"ok": false, "error": "<code>"}` (HTTP 200), a
rate limit is HTTP 429 + `Retry-After` (https://docs.slack.dev/apis/web-api/rate-limits), and
its 5xx pages are HTML; slack-sdk raises `SlackApiError` for all three and lets aiohttp's
errors through. The codes are Slack's, so they are ours too (`error.<code>` in `strings`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from connectors.base import ConnectError
from connectors.slack.strings import STRINGS
from inbox.models import (
    CredentialsRefused,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)

log = logging.getLogger(__name__)

CREDENTIAL_CODES = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired",
                              "account_inactive"})
# Codes the method references list as worth retrying (internal trouble on Slack's side).
TRANSIENT_CODES = frozenset({"internal_error", "fatal_error", "service_unavailable",
                             "request_timeout"})
# Permanent codes with their own sentence; any other `ok: false` code is `slack_error`.
PERMANENT_CODES = frozenset({"channel_not_found", "not_in_channel", "is_archived",
                             "msg_too_long", "no_text", "missing_scope", "restricted_action"})
RATE_LIMIT_CODES = frozenset({"ratelimited", "rate_limited"})
DEFAULT_RETRY_AFTER = 5.0


def sentence(code: str, detail: str = "", locale: str = "en") -> str:
    return STRINGS[locale][f"error.{code}"].format(detail=detail)


def slack_code(exc: SlackApiError) -> str | None:
    data = getattr(exc.response, "data", None)
    if isinstance(data, Mapping) and isinstance(data.get("error"), str):
        return data["error"]
    return None


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def classify(exc: BaseException, *, scope: str = "account") -> DeliveryError:
    """One Slack failure as the send error the outbox understands (specific cases first);
    `scope` is what a rate limit pauses (the method called, see `send_scope`)."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None) or 0
        code = slack_code(exc)
        if status == 429 or code in RATE_LIMIT_CODES:
            return RateLimited(_retry_after(getattr(exc.response, "headers", None)),
                               sentence("rate_limited"), scope=scope)
        if code in CREDENTIAL_CODES:
            return CredentialsRefused(sentence(code), code=code)
        if status >= 500 or code in TRANSIENT_CODES:
            return TransientError(sentence("slack_unavailable"), code="slack_unavailable")
        if code in PERMANENT_CODES:
            detail = ""
            if code == "missing_scope":
                data = exc.response.data if isinstance(exc.response.data, Mapping) else {}
                detail = str(data.get("needed") or "")
            return PermanentError(sentence(code, detail), code=code)
        if code is not None:
            return PermanentError(sentence("slack_error", code), code="slack_error")
        return TransientError(sentence("slack_unavailable"), code="slack_unavailable")
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError):
        return TransientError(sentence("network"), code="network")
    if isinstance(exc, SlackClientError):
        return TransientError(sentence("network"), code="network")
    log.error("unexpected error from Slack: %s", type(exc).__name__)
    return TransientError(sentence("unexpected"), code="unexpected")


def connect_error(exc: BaseException) -> ConnectError:
    """A failed `auth.test` as `check()` reports it: invalid_auth / cannot_connect / unknown."""
    if isinstance(exc, SlackApiError):
        code = slack_code(exc)
        status = getattr(exc.response, "status_code", None) or 0
        if code in CREDENTIAL_CODES:
            return ConnectError("invalid_auth", sentence(code))
        if status == 429 or status >= 500 or code in TRANSIENT_CODES | RATE_LIMIT_CODES:
            return ConnectError("cannot_connect", sentence("cannot_connect"))
        return ConnectError("unknown", sentence("unknown", code or f"HTTP {status}"))
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError | SlackClientError):
        return ConnectError("cannot_connect", sentence("cannot_connect"))
    return ConnectError("unknown", sentence("unknown", type(exc).__name__))
