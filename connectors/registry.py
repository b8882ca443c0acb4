"""Platform name → connector class. Adding a platform is one line here."""

from __future__ import annotations

from typing import Any

from connectors.base import AccountContext, Connector, Sink
from connectors.telegram.connector import TelegramConnector

CONNECTORS: dict[str, Any] = {
    TelegramConnector.platform: TelegramConnector,
}


def connector_class(platform: str) -> Any:
    try:
        return CONNECTORS[platform]
    except KeyError:
        raise KeyError(f"unknown platform '{platform}'; known: {', '.join(sorted(CONNECTORS))}")\
            from None


def build(account: AccountContext, sink: Sink, db: Any = None) -> Connector:
    return connector_class(account.platform)(account, sink, db)  # type: ignore[no-any-return]
