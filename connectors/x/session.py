"""The HTTP session we hand to tweepy's `AsyncClient`, so its requests reach our base URL.

tweepy 4.x builds every URL as `"https://api.twitter.com" + route` (see
`tweepy/asynchronous/client.py`, `AsyncBaseClient.request`) and sends it with `self.session`
when one is set. `RoutedSession` is what we set: it rewrites the scheme, host and port of each
request to the account's `api_base_url` (default `https://api.x.com`, X's current host) and
otherwise passes the request through unchanged — same path, query, body and headers.

OAuth 1.0a signs the request URL (https://docs.x.com/fundamentals/authentication/oauth-1-0a/
creating-a-signature: the base string holds the scheme, host and path), so a signature tweepy
made for `api.twitter.com` does not hold for another host. When the host changes and the
request carries an OAuth 1.0a header, the header is signed again for the URL actually
requested, with the same credentials and the same oauth_* parameters tweepy would send; a
Bearer header is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from oauthlib.oauth1 import Client as OAuthClient
from yarl import URL

DEFAULT_BASE = "https://api.x.com"
TWEEPY_HOST = URL("https://api.twitter.com")


@dataclass(frozen=True, slots=True)
class OAuth1Keys:
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str

    def __repr__(self) -> str:
        return "OAuth1Keys(***)"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The `x-rate-limit-*` headers of one answer (https://docs.x.com/x-api/fundamentals/
    rate-limits): requests allowed per window, left in it, and the window's end (epoch s)."""

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> RateLimit:
        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        reset = num("x-rate-limit-reset")
        return cls(num("x-rate-limit-limit"), num("x-rate-limit-remaining"),
                   float(reset) if reset is not None else None)


def oauth1_header(keys: OAuth1Keys, method: str, url: str | URL,
                  headers: Mapping[str, str] | None = None) -> str:
    """The OAuth 1.0a user-context `Authorization` header for one request: HMAC-SHA1 over the
    method, the URL (scheme, host, path, query) and fresh oauth_* parameters."""
    client = OAuthClient(keys.consumer_key, keys.consumer_secret, keys.access_token,
                         keys.access_token_secret)
    _, signed, _ = client.sign(str(url), method, headers=dict(headers or {}))
    return str(signed["Authorization"])


class RoutedSession:
    """Stands in for the `aiohttp.ClientSession` tweepy uses: tweepy calls only
    `session.request(method, url, params=, json=, headers=)` as an async context manager."""

    def __init__(self, base_url: str | None, *, keys: OAuth1Keys | None = None,
                 timeout: float = 20.0) -> None:
        base = URL((base_url or DEFAULT_BASE).rstrip("/"))
        if not base.scheme or not base.host:
            raise ValueError(f"not an absolute URL: {base_url!r}")
        self.base = base
        self.keys = keys
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    def rewrite(self, url: str | URL) -> URL:
        """`https://api.twitter.com/2/x?q` → `<base>/2/x?q`, the query bytes untouched."""
        given = url if isinstance(url, URL) else URL(url, encoded=True)
        path = self.base.raw_path.rstrip("/") + given.raw_path
        text = str(self.base.with_path(path, encoded=True))
        if given.raw_query_string:
            text += "?" + given.raw_query_string
        return URL(text, encoded=True)

    def _resign(self, method: str, url: URL, headers: dict[str, str]) -> None:
        auth = headers.get("Authorization", "")
        if self.keys is None or not auth.startswith("OAuth "):
            return
        unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
        headers["Authorization"] = oauth1_header(self.keys, method, url, unsigned)

    def request(self, method: str, url: str | URL, **kwargs: Any) -> Any:
        target = self.rewrite(url)
        headers = dict(kwargs.pop("headers", None) or {})
        if (target.scheme, target.host, target.port) != (
                TWEEPY_HOST.scheme, TWEEPY_HOST.host, TWEEPY_HOST.port):
            self._resign(method, target, headers)
        return self.session.request(method, target, headers=headers, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
