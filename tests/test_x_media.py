"""X media through `fetch_attachment`: a post's photo from the public media host without
credentials, a DM's from ton with an OAuth 1.0a signed GET, a video's best mp4 rendition; only
X's media hosts (or the sandbox standing in for them) are contacted; 404, 429, 5xx, a refused
signature map to the typed errors. All against the X sandbox over HTTP, and end to end through
a listening Switchboard and `GET /api/messages/{id}/attachments/{n}`."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.x import media
from connectors.x.connector import XConnector
from connectors.x.sandbox import XSandbox
from connectors.x.sandbox_state import Media, tiny_png
from connectors.x.session import OAuth1Keys, oauth1_header
from inbox.models import (
    CredentialsRefused,
    InboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
)
from tests.kits.x import (  # noqa: F401
    CUSTOMER_ID,
    OUR_ID,
    FakeRuntime,
    XLive,
    account,
    credentials,
    sandbox_account,
    x_live_fixture,
)
from tests.live import free_port

JPEG = b"\xff\xd8\xff\xe0" + os.urandom(150_000)  # over two 64 KiB chunks
PNG = tiny_png((30, 144, 255), 16)
OTHER_ID = "3333333333333333333"


class World:
    def __init__(self, sandbox: XSandbox, connector: XConnector, runtime: FakeRuntime) -> None:
        self.sandbox, self.connector, self.runtime = sandbox, connector, runtime

    async def polled(self) -> list[InboundMessage]:
        source = self.connector.inbound()
        assert source is not None
        batch = await source.fetch(self.runtime)  # type: ignore[union-attr]
        return [e for e in batch.events if isinstance(e, InboundMessage)]

    async def bytes_of(self, attachment: dict[str, Any],
                       connector: XConnector | None = None) -> tuple[bytes, Any]:
        stream = await (connector or self.connector).fetch_attachment(attachment)
        return b"".join([c async for c in stream.chunks]), stream

    def media_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.sandbox.calls
                if c["path"].startswith(("/media/", "/1.1/ton/"))]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    sandbox = XSandbox()
    base = await sandbox.start()
    sandbox_account(sandbox)
    sandbox.add_user("li_na", "李娜", user_id=CUSTOMER_ID)
    runtime = FakeRuntime()
    connector = XConnector(account(base), runtime)
    try:
        yield World(sandbox, connector, runtime)
    finally:
        await connector.close()
        await sandbox.stop()


@pytest.fixture
async def outside() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that is not X: it must never be asked anything."""
    seen: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b"not from X", content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", any_path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def doc_of(message: InboundMessage, n: int = 0) -> dict[str, Any]:
    return message.attachments[n].as_doc()


# --------------------------------------------------------------------------- end to end


async def test_a_mention_photo_and_a_dm_image_are_served_by_the_api(x_live: XLive) -> None:
    x, sb = x_live, x_live.sandbox
    await x.add_account()
    mention = sb.inject_mention(x.customer, "the box arrived crushed", to=OUR_ID,
                                media=[sb.photo(JPEG, "image/jpeg")])
    dm = sb.inject_dm(x.customer, OUR_ID, "照片在这里", media=[sb.photo(PNG, "image/png")])
    stored = {m["external_id"]: m for m in await x.wait_inbound(2)}
    for external_id, data, mime in ((mention, JPEG, "image/jpeg"), (dm, PNG, "image/png")):
        msg = stored[external_id]
        assert msg["attachments"][0]["file_id"].startswith("3_")
        resp = await x.live.http.get(
            f"{x.live.url}/api/messages/{msg['_id']}/attachments/0", headers=x.live.headers)
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == mime
        assert await resp.read() == data
    calls = {c["path"].split("/")[1]: c for c in sb.calls
             if c["path"].startswith(("/media/", "/1.1/ton/"))}
    assert calls["media"]["auth"] == "" and calls["media"]["status"] == 200  # no credentials
    assert calls["1.1"]["auth"] == "OAuth" and calls["1.1"]["status"] == 200  # signed


# --------------------------------------------------------------------------- DM media


async def test_dm_media_needs_a_valid_signature_from_a_participant(world: World) -> None:
    sb = world.sandbox
    sb.inject_dm(CUSTOMER_ID, OUR_ID, "see attached", media=[sb.photo(PNG, "image/png")])
    (msg,) = await world.polled()
    attachment = doc_of(msg)
    url = attachment["extra"]["url"]
    assert url.startswith(f"{sb.base_url}/1.1/ton/data/dm/{msg.external_id}/")

    keys = world.connector.keys
    wrong = OAuth1Keys(keys.consumer_key, keys.consumer_secret, keys.access_token, "not-it")
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": oauth1_header(wrong, "GET", url)},
                        {"Authorization": oauth1_header(keys, "GET", url + "?x=1")}):
            async with http.get(url, headers=headers) as resp:
                assert resp.status == 401 and b"not-it" not in await resp.read()
        async with http.get(url, headers={"Authorization": oauth1_header(keys, "GET", url)},
                            ) as resp:
            assert resp.status == 200 and await resp.read() == PNG

    data, stream = await world.bytes_of(attachment)
    assert data == PNG and stream.mime == "image/png" and stream.name.endswith(".png")

    # another brand account of the same sandbox is not in that conversation: not its keys
    sandbox_account(sb, 2, username="acme_cn", user_id=OTHER_ID)
    stranger = XConnector(account(sb.base_url, app=2, platform_id=OTHER_ID), FakeRuntime())
    try:
        with pytest.raises(PermanentError) as refused:
            await world.bytes_of(attachment, stranger)
        assert not isinstance(refused.value, CredentialsRefused)
        assert refused.value.code == "media_forbidden"
    finally:
        await stranger.close()

    sb.set_tokens(OUR_ID, "1-regenerated-token-xyz", "regenerated-secret")  # ours are revoked
    with pytest.raises(CredentialsRefused):
        await world.bytes_of(attachment)


# --------------------------------------------------------------------------- hosts


async def test_a_host_outside_the_allow_list_is_refused_without_a_request(
        world: World, outside: tuple[str, list[str]]) -> None:
    base, seen = outside
    sb = world.sandbox
    for url in (f"{base}/media/x.jpg", "https://evil.example/media/x.jpg",
                "http://pbs.twimg.com/media/x.jpg", "https://pbs.twimg.com.evil.example/x.jpg",
                "https://api.x.com/1.1/ton/data/dm/1/2/x.jpg"):
        with pytest.raises(PermanentError) as refused:
            await world.bytes_of({"type": "photo", "file_id": "3_1", "extra": {"url": url}})
        assert refused.value.code == "media_host_refused"
        assert "X's media hosts" in refused.value.human
    # a redirect from an allowed host to another is refused at the hop, before it is asked
    url = sb.host_file(JPEG, "image/jpeg", "moved.jpg")
    sb.fail("media", 302, headers={"Location": f"{base}/stolen.jpg"})
    with pytest.raises(PermanentError, match="X's media hosts"):
        await world.bytes_of({"type": "photo", "file_id": "3_2", "extra": {"url": url}})
    assert seen == []
    assert len(world.media_calls()) == 1  # the sandbox's redirect, and nothing after it

    c = world.connector
    assert media.route(c, "https://pbs.twimg.com/media/a.jpg") == "public"
    assert media.route(c, "https://video.twimg.com/ext_tw_video/1/pu/vid/a.mp4") == "public"
    assert media.route(c, "https://ton.twitter.com/1.1/ton/data/dm/1/2/a.jpg") == "signed"
    assert media.route(c, f"{sb.base_url}/media/a.jpg") == "public"
    assert media.route(c, f"{sb.base_url}/1.1/ton/data/dm/1/2/a.jpg") == "signed"


# --------------------------------------------------------------------------- errors


async def test_404_429_5xx_and_an_unreachable_host_map_to_typed_errors(world: World) -> None:
    sb = world.sandbox
    sb.inject_mention(CUSTOMER_ID, "look", to=OUR_ID, media=[sb.photo(JPEG)])
    (msg,) = await world.polled()
    attachment = doc_of(msg)

    reset = int(time.time()) + 30
    sb.fail("media", 429, headers={"x-rate-limit-remaining": "0",
                                   "x-rate-limit-reset": str(reset)})
    with pytest.raises(RateLimited) as limited:
        await world.bytes_of(attachment)
    assert limited.value.scope == "media" and 25 <= limited.value.retry_after <= 31

    sb.fail("media", 503)
    with pytest.raises(TransientError) as server:
        await world.bytes_of(attachment)
    assert server.value.code == "media_server"

    assert (await world.bytes_of(attachment))[0] == JPEG  # once X answers again

    sb.files.clear()  # the customer deleted the post: X's CDN answers 404
    with pytest.raises(PermanentError) as gone:
        await world.bytes_of(attachment)
    assert gone.value.code == "media_gone" and "no longer available on X" in gone.value.human
    assert not isinstance(gone.value, CredentialsRefused)

    dead = f"http://127.0.0.1:{free_port()}"  # the configured API host, with nobody there
    lonely = XConnector(account(dead), FakeRuntime())
    try:
        with pytest.raises(TransientError) as network:
            await lonely.fetch_attachment({"type": "photo", "extra": {
                "url": f"{dead}/media/a.jpg"}})
        assert network.value.code == "media_network"
    finally:
        await lonely.close()

    with pytest.raises(PermanentError) as nothing:
        await world.bytes_of({"type": "photo", "file_id": "3_9", "extra": {}})
    assert nothing.value.code == "media_unavailable"


# --------------------------------------------------------------------------- video


async def test_a_video_streams_its_best_mp4_rendition_or_else_its_still(world: World) -> None:
    sb = world.sandbox
    low, high = b"mp4-low" * 1000, b"mp4-high" * 4000
    variants = [
        {"content_type": "application/x-mpegURL",
         "url": sb.host_file(b"#EXTM3U", "application/x-mpegURL", "v.m3u8")},
        {"bit_rate": 2176000, "content_type": "video/mp4",
         "url": sb.host_file(high, "video/mp4", "v-720.mp4")},
        {"bit_rate": 256000, "content_type": "video/mp4",
         "url": sb.host_file(low, "video/mp4", "v-180.mp4")}]
    still = sb.host_file(PNG, "image/png", "v.png")
    sb.inject_mention(CUSTOMER_ID, "watch this", to=OUR_ID, media=[
        Media("7_1", "video", preview_image_url=still, variants=variants),
        Media("16_2", "animated_gif", preview_image_url=still)])
    (msg,) = await world.polled()
    video, gif = doc_of(msg, 0), doc_of(msg, 1)
    assert video["extra"]["variants"] == variants  # asked for in media.fields, kept
    data, stream = await world.bytes_of(video)
    assert data == high and stream.mime == "video/mp4"
    data, stream = await world.bytes_of(gif)
    assert data == PNG and stream.mime == "image/png"
