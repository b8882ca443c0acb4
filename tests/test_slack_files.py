"""Customer files through fetch_attachment: the bot token as Bearer, only to Slack's hosts;
Slack's sign-in page instead of the file is a refusal, not the file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.slack.connector import SlackConnector
from connectors.slack.normalise import normalise
from connectors.slack.sandbox import SlackSandbox
from inbox.models import InboundMessage, PermanentError, RateLimited, TransientError
from tests.kits.slack import RecordingRuntime, account, seeded_sandbox

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 600


@pytest.fixture
async def sandbox() -> AsyncIterator[SlackSandbox]:
    sandbox = await seeded_sandbox()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
async def connector(sandbox: SlackSandbox) -> AsyncIterator[SlackConnector]:
    connector = SlackConnector(account(sandbox.api_url), RecordingRuntime())
    yield connector
    await connector.close()


async def shared_file(sandbox: SlackSandbox, connector: SlackConnector) -> dict[str, object]:
    file = sandbox.add_file("U0CUST", "invoice.png", "image/png", PNG)
    payload = await sandbox.say("U0CUST", "D0CUST01", "Here is the invoice", files=[file])
    msg = normalise(payload, connector.account)
    assert isinstance(msg, InboundMessage)
    (attachment,) = msg.attachments
    return attachment.as_doc()


async def test_file_is_streamed_with_the_bot_token(sandbox: SlackSandbox,
                                                   connector: SlackConnector) -> None:
    attachment = await shared_file(sandbox, connector)
    stream = await connector.fetch_attachment(attachment)
    data = b"".join([chunk async for chunk in stream.chunks])
    assert data == PNG
    assert (stream.mime, stream.name, stream.size) == ("image/png", "invoice.png", len(PNG))


async def test_sign_in_page_is_not_the_file(sandbox: SlackSandbox) -> None:
    connector = SlackConnector(account(sandbox.api_url, bot_token="xoxb-other-app"),
                               RecordingRuntime())
    try:
        attachment = await shared_file(sandbox, connector)
        with pytest.raises(PermanentError) as caught:
            await connector.fetch_attachment(attachment)
        assert caught.value.code == "file_unavailable"
    finally:
        await connector.close()


async def test_token_only_goes_to_slack_hosts(connector: SlackConnector) -> None:
    for url in ("https://evil.example/files-pri/T0ACME-F1/download/x.png",
                "http://files.slack.com/files-pri/T0ACME-F1/download/x.png",
                "https://files.slack.com.evil.example/x.png"):
        with pytest.raises(PermanentError) as caught:
            await connector.fetch_attachment({"extra": {"url_private_download": url}})
        assert caught.value.code == "file_host_refused"
    assert connector._host_allowed("https://files.slack.com/files-pri/T0ACME-F1/x.png")
    with pytest.raises(PermanentError):
        await connector.fetch_attachment({"file_id": "F1", "extra": {}})


async def test_file_host_trouble(sandbox: SlackSandbox, connector: SlackConnector) -> None:
    attachment = await shared_file(sandbox, connector)
    dead = {**attachment, "extra": {"url_private_download": "http://127.0.0.1:9/x"}}
    local = SlackConnector(account("http://127.0.0.1:9/api/"), RecordingRuntime())
    try:
        with pytest.raises(TransientError):
            await local.fetch_attachment(dead)
    finally:
        await local.close()
    gone = {**attachment, "extra": {
        "url_private_download": f"{sandbox.base_url}/files-pri/T0ACME-F0GONE/download/x.png"}}
    with pytest.raises(PermanentError):
        await connector.fetch_attachment(gone)
    sandbox.fail("files", error="ratelimited", retry_after=12)
    with pytest.raises(RateLimited) as caught:
        await connector.fetch_attachment(attachment)
    assert caught.value.retry_after == 12.0
    sandbox.fail("files", status=502)
    with pytest.raises(TransientError):
        await connector.fetch_attachment(attachment)
    stream = await connector.fetch_attachment(attachment)
    assert b"".join([c async for c in stream.chunks]) == PNG
