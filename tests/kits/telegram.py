"""The contract test's kit for Telegram: one operation against a server answering a fixture."""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import SecretStr

from connectors.base import AccountContext, Batch
from connectors.telegram.connector import TelegramConnector
from inbox.models import AccountId, ConversationId, MessageId, OutboundMessage
from tests.kits.replay import replaying
from tests.kits.webhooks import WebhookTarget

BOT_TOKEN = "7000000001:AAtest-contract-token-0123456789abcdef"
GOLDEN_ACCOUNT = AccountContext(id="acc-telegram-1", platform="telegram", name="Acme",
                                credentials={}, platform_id="7000000001")


def account(api_base_url: str | None, *, mode: str = "webhook") -> AccountContext:
    return AccountContext(
        id="acc-telegram-1", platform="telegram", name="Acme",
        credentials={"bot_token": SecretStr(BOT_TOKEN)}, api_base_url=api_base_url, mode=mode,
        platform_id="7000000001", webhook_url="https://inbox.example/webhooks/telegram/1",
        webhook_secret=SecretStr("s3cret-webhook-token"))


class _Runtime:
    """Only `load_cursor` is used by one polling round; nothing is stored here."""

    async def load_cursor(self, name: str = "default") -> Any:
        return None


async def replay(operation: str, fixture: dict[str, Any]) -> Any:
    async with replaying(fixture) as server:
        connector = TelegramConnector(account(server.base_url, mode="polling"
                                              if operation == "poll" else "webhook"),
                                      _Runtime())  # type: ignore[arg-type]
        try:
            if operation == "send":
                return await connector.send(OutboundMessage(
                    message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
                    account_id=AccountId("acc-telegram-1"), thread_key="123456789",
                    text="Hello from the contract test"))
            if operation == "check":
                return await connector.check()
            if operation == "fetch_attachment":
                stream = await connector.fetch_attachment(
                    {"type": "photo", "file_id": "AgADAgADOagxG8vyeUvsltCem", "mime": "image/jpeg"})
                return stream
            if operation == "on_create":
                return await connector.on_create()
            if operation == "poll":
                source = connector.inbound()
                assert source is not None
                source.poll_timeout = 0
                batch: Batch = await source.fetch(_Runtime())  # type: ignore[arg-type]
                return batch
            raise AssertionError(f"no such operation in the Telegram kit: {operation}")
        finally:
            await connector.close()


async def webhook_target(client: Any, admin_headers: dict[str, str],
                         stack: contextlib.AsyncExitStack) -> WebhookTarget:
    from connectors.telegram.sandbox import SECRET_HEADER, TelegramSandbox

    sandbox = TelegramSandbox()
    await sandbox.start()
    stack.push_async_callback(sandbox.stop)
    sandbox.add_bot(BOT_TOKEN, 7000000001, "acme_support_bot", "Acme Support")
    resp = await client.post("/api/accounts", headers=admin_headers, json={
        "platform": "telegram", "name": "fuzz telegram", "mode": "webhook",
        "api_base_url": sandbox.base_url, "credentials": {"bot_token": BOT_TOKEN}})
    assert resp.status == 201, await resp.text()
    account_id = (await resp.json())["id"]
    doc = await client.app["services"].accounts.get(account_id)
    secret = doc["webhook_secret"]
    return WebhookTarget(path=f"/webhooks/telegram/{account_id}", account_id=account_id,
                         sign=lambda body: {SECRET_HEADER: secret,
                                            "Content-Type": "application/json"})
