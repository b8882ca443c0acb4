"""Verifying that a request comes from Slack: the signing secret's HMAC over the raw body.

https://docs.slack.dev/authentication/verifying-requests-from-slack/ : Slack sends
`X-Slack-Request-Timestamp` (unix seconds) and `X-Slack-Signature` = `v0=` + hex
HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`). The timestamp is part of what is
signed, so a captured request replayed later fails the 5-minute window, and the same body with
a fresh timestamp fails the signature. Verification runs over the bytes exactly as received,
before anything is parsed; the clock is passed in so tests can move it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_AGE_SECONDS = 300
VERSION = "v0"


class SignatureError(Exception):
    """The request is not provably from Slack; `reason` says why (never the secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever the mapping's case handling."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack would send (the sandbox signs with this too)."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify(signing_secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Raise `SignatureError` unless the headers sign exactly this body within the window."""
    if not signing_secret:
        raise SignatureError("no signing secret is configured for this account")
    timestamp = header(headers, TIMESTAMP_HEADER)
    signature = header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise SignatureError("missing Slack signature headers")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("malformed request timestamp")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise SignatureError("request timestamp is outside the 5-minute window")
    expected = sign(signing_secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise SignatureError("signature does not match")
