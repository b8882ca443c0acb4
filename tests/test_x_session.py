"""The session adapter that points tweepy at the configured base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from tweepy.asynchronous import AsyncClient
from yarl import URL

from connectors.x.sandbox_state import oauth_params, verify_oauth1
from connectors.x.session import OAuth1Keys, RateLimit, RoutedSession

KEYS = OAuth1Keys("ck-abcdefghij", "cs-abcdefghij", "at-abcdefghij", "ats-abcdefghij")


def test_rewrite_keeps_path_and_query_bytes() -> None:
    session = RoutedSession("http://127.0.0.1:8080/prefix/")
    url = URL("https://api.twitter.com/2/users/1/mentions?since_id=5&start_time=2026-01-01T00%3A00%3A00Z",
              encoded=True)
    out = session.rewrite(url)
    assert str(out) == ("http://127.0.0.1:8080/prefix/2/users/1/mentions?since_id=5&"
                        "start_time=2026-01-01T00%3A00%3A00Z")
    assert str(RoutedSession(None).rewrite("https://api.twitter.com/2/users/me")) == \
        "https://api.x.com/2/users/me"


def test_a_relative_base_is_refused() -> None:
    with pytest.raises(ValueError):
        RoutedSession("api.x.com")


def test_keys_never_show_in_repr() -> None:
    assert "cs-abcdefghij" not in repr(KEYS) and "cs-abcdefghij" not in repr(RoutedSession(
        None, keys=KEYS).keys)


def test_rate_limit_headers() -> None:
    limit = RateLimit.of({"x-rate-limit-limit": "15", "x-rate-limit-remaining": "3",
                          "x-rate-limit-reset": "1700000000"})
    assert (limit.limit, limit.remaining, limit.reset) == (15, 3, 1_700_000_000.0)
    assert RateLimit.of({"x-rate-limit-remaining": "lots"}).remaining is None


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append({"url": f"{request.scheme}://{request.host}{request.path_qs}",
                     "method": request.method, **{k.lower(): v for k, v in request.headers.items()},
                     "body": (await request.read()).decode()})
        return web.json_response({"data": {"id": "1", "name": "n", "username": "u"}},
                                 headers={"x-rate-limit-remaining": "74"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_tweepy_requests_reach_the_base_url_signed_for_it(
        echo: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = echo
    session = RoutedSession(base, keys=KEYS)
    client = AsyncClient(consumer_key=KEYS.consumer_key, consumer_secret=KEYS.consumer_secret,
                         access_token=KEYS.access_token,
                         access_token_secret=KEYS.access_token_secret, return_type=dict)
    client.session = session
    try:
        await client.get_users_mentions("42", since_id="7", user_auth=True,
                                         tweet_fields=["created_at", "conversation_id"])
        await client.create_tweet(text="你好 ^ZK", in_reply_to_tweet_id="7", user_auth=True)
    finally:
        await session.close()
    get, post = seen
    assert get["url"].startswith(f"{base}/2/users/42/mentions?")
    assert "since_id=7" in get["url"] and "tweet.fields=created_at,conversation_id" in get["url"]
    assert get["user-agent"].startswith("Python/") and "Tweepy/" in get["user-agent"]
    for request in (get, post):
        auth = request["authorization"]
        assert oauth_params(auth)["oauth_consumer_key"] == KEYS.consumer_key
        assert verify_oauth1(request["method"], request["url"], auth, KEYS.consumer_secret,
                             KEYS.access_token_secret)
        # the signature tweepy made for api.twitter.com would not hold here
        assert not verify_oauth1(request["method"], request["url"].replace(base,
                                 "https://api.twitter.com"), auth, KEYS.consumer_secret,
                                 KEYS.access_token_secret)
    assert post["content-type"] == "application/json"
    assert '"in_reply_to_tweet_id": "7"' in post["body"]


async def test_bearer_requests_pass_through_untouched(
        echo: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = echo
    session = RoutedSession(base, keys=KEYS)
    client = AsyncClient(bearer_token="AAAA-app-token", return_type=dict)
    client.session = session
    try:
        await client.request("GET", "/2/webhooks", params={})
    finally:
        await session.close()
    assert seen[0]["authorization"] == "Bearer AAAA-app-token"
    assert seen[0]["url"] == f"{base}/2/webhooks"
