"""Slack request signing: the published test vector, stale, forged, replayed, malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.slack.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    sign,
    verify,
)

VECTOR = json.loads((Path(__file__).parent / "fixtures" / "slack" / "signing_test_vector.json")
                    .read_text(encoding="utf-8"))
SECRET = VECTOR["signing_secret"]
BODY = VECTOR["body"].encode()
TS = VECTOR["timestamp"]
NOW = float(TS) + 10


def headers(timestamp: str = TS, signature: str = VECTOR["signature"]) -> dict[str, str]:
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature}


def test_slacks_published_vector() -> None:
    assert sign(SECRET, TS, BODY) == VECTOR["signature"]
    verify(SECRET, headers(), BODY, NOW)


def test_headers_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    verify(SECRET, lowered, BODY, NOW)


def test_window_is_five_minutes_both_ways() -> None:
    verify(SECRET, headers(), BODY, float(TS) + 300)
    verify(SECRET, headers(), BODY, float(TS) - 300)
    with pytest.raises(SignatureError, match="window"):
        verify(SECRET, headers(), BODY, float(TS) + 301)
    with pytest.raises(SignatureError, match="window"):
        verify(SECRET, headers(), BODY, float(TS) - 301)


def test_forged_signature_and_tampered_body() -> None:
    forged = VECTOR["signature"][:-1] + ("0" if VECTOR["signature"][-1] != "0" else "1")
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers(signature=forged), BODY, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers(), BODY + b"&x=1", NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify("another-secret", headers(), BODY, NOW)


def test_replayed_body_with_a_new_timestamp() -> None:
    """An attacker who captured a request cannot refresh its timestamp: it is signed."""
    later = str(int(TS) + 3600)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, headers(timestamp=later), BODY, float(later))
    with pytest.raises(SignatureError, match="window"):
        verify(SECRET, headers(), BODY, float(later))


@pytest.mark.parametrize("bad", [
    {}, {TIMESTAMP_HEADER: TS}, {SIGNATURE_HEADER: VECTOR["signature"]},
    headers(timestamp="15314206l8"), headers(timestamp="-1531420618"),
    headers(timestamp="1" * 40), headers(signature="v0=żółw"),
])
def test_malformed_headers(bad: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, bad, BODY, NOW)


def test_no_secret_refuses_everything() -> None:
    with pytest.raises(SignatureError, match="no signing secret"):
        verify("", headers(), BODY, NOW)
