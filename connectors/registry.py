"""Platform name → connector class. Adding a platform is one line here."""

from __future__ import annotations

from typing import Any

from connectors.email.connector import EmailConnector
from connectors.slack.connector import SlackConnector
from connectors.telegram.connector import TelegramConnector
from connectors.x.connector import XConnector

CONNECTORS: dict[str, Any] = {
    TelegramConnector.platform: TelegramConnector,
    SlackConnector.platform: SlackConnector,
    XConnector.platform: XConnector,
    EmailConnector.platform: EmailConnector,
}


def connector_class(platform: str) -> Any:
    try:
        return CONNECTORS[platform]
    except KeyError:
        raise KeyError(f"unknown platform '{platform}'; known: {', '.join(sorted(CONNECTORS))}")\
            from None
