"""Every connector's token shapes are masked in log lines (web/cli.py RedactSecrets), and
ordinary ids are not."""

from __future__ import annotations

import logging

import pytest

from web.cli import RedactSecrets

TOKENS = [
    "sbt_wehBd5vZtqZQOgtO-T0yPM4a6Ot8wTPjPIEvcRoJZmc",  # our own API token
    "7000000001:AAH-sandbox-token-for-browser-tests-0",  # Telegram bot token
    "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",  # Slack bot token
    "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",  # Slack app token
    "1234567890-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd",  # X access token
    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjK",  # X access token secret (45)
    "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI",  # X app bearer token
    "ya29.a0AfH6SMBx3kQ-fakeAccessTokenValue_0123456789",  # Google OAuth access token
]


def redacted(message: str) -> str:
    record = logging.LogRecord("connectors.x", logging.WARNING, __file__, 1, "%s", (message,),
                               None)
    RedactSecrets().filter(record)
    return record.getMessage()


@pytest.mark.parametrize("token", TOKENS)
def test_a_token_in_a_log_line_is_masked(token: str) -> None:
    line = redacted(f"send failed with credentials {token} (401)")
    assert token not in line and "***" in line


def test_ids_are_not_masked() -> None:
    line = "reply 6b0eda1d80c41573d2eb9bc2 to tweet 1869420012345678901 in conversation C0123ABCD"
    assert redacted(line) == line
