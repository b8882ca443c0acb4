"""Streaming a post's or DM's media from X: `XConnector.fetch_attachment`.

Which file (https://docs.x.com/x-api/fundamentals/data-dictionary, media object): a photo's
`url`; for a video or animated GIF the `video/mp4` entry of `variants` with the highest
`bit_rate`, else its `preview_image_url` (a still). The legacy Activity API DM shape keeps
`media_url_https` instead.

Where from: public media (pbs.twimg.com, video.twimg.com) is fetched without credentials; a
DM's media lives on ton.twitter.com (`/1.1/ton/data/dm/...`) and needs an OAuth 1.0a
user-context signed GET, signed as the rest of the connector signs (session.py). Nothing
else is ever contacted except the configured `api_base_url` host (the sandbox, which stands in
for all three); redirects are followed by hand so every hop is checked, and re-signed when it
goes to ton.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from connectors.base import AttachmentStream
from connectors.x.errors import _retry_after
from connectors.x.session import oauth1_header
from connectors.x.strings import STRINGS
from inbox.models import CredentialsRefused, PermanentError, RateLimited, TransientError

if TYPE_CHECKING:
    from connectors.x.connector import XConnector

PUBLIC_HOSTS = frozenset({"pbs.twimg.com", "video.twimg.com"})
TON_HOST = "ton.twitter.com"
TON_PATH = "/1.1/ton/"
MAX_REDIRECTS = 3
CHUNK = 64 * 1024
DEFAULT_RETRY_AFTER = 60.0
SCOPE = "media"
# A whole video may take longer than an API call's 20 s; only a stalled read is an error.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)


def _say(code: str) -> str:
    return STRINGS["en"][f"error.{code}"]


def _permanent(code: str) -> PermanentError:
    return PermanentError(_say(code), code=code)


def media_url(attachment: Mapping[str, Any]) -> str | None:
    """The URL of the file to show for one normalised attachment (see the module's doc)."""
    extra = attachment.get("extra") or {}
    if attachment.get("type") in ("video", "animated_gif"):
        mp4 = [v for v in extra.get("variants") or () if isinstance(v, Mapping)
               and v.get("content_type") == "video/mp4" and isinstance(v.get("url"), str)]
        if mp4:
            best = max(mp4, key=lambda v: v.get("bit_rate") if isinstance(
                v.get("bit_rate"), int) else -1)
            return str(best["url"])
        candidates = ("preview_image_url", "url", "media_url_https")
    else:
        candidates = ("url", "media_url_https", "preview_image_url")
    for key in candidates:
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def route(connector: XConnector, url: str) -> str | None:
    """How `url` may be fetched: "public" (no credentials), "signed" (OAuth 1.0a), or None
    (refused: not X's media hosts nor the configured API host)."""
    scheme, host, _ = _origin(url)
    path = urlsplit(url).path
    if scheme == "https" and host in PUBLIC_HOSTS:
        return "public"
    if scheme == "https" and host == TON_HOST:
        return "signed"
    if _origin(url) == _origin(str(connector.session.base)):
        return "signed" if path.startswith(TON_PATH) else "public"
    return None


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            yield chunk
    finally:
        resp.release()


async def _credentials_refused(connector: XConnector) -> bool:
    """Whether X refuses the account's keys themselves (users/me), rather than this one file."""
    try:
        await connector.call("users", connector.client.get_me, user_auth=True)
    except CredentialsRefused:
        return True
    except Exception:  # anything else says nothing about the keys
        return False
    return False


async def fetch(connector: XConnector, attachment: Mapping[str, Any]) -> AttachmentStream:
    url = media_url(attachment)
    if url is None:
        raise _permanent("media_unavailable")
    session = connector.session.session
    resp: aiohttp.ClientResponse | None = None
    how: str | None = None
    for _ in range(MAX_REDIRECTS + 1):
        how = route(connector, url)
        if how is None:
            raise _permanent("media_host_refused")
        headers = {"Authorization": oauth1_header(connector.keys, "GET", url)} \
            if how == "signed" else {}
        try:
            resp = await session.get(url, headers=headers, allow_redirects=False,
                                     timeout=TIMEOUT)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientError(_say("media_network"), code="media_network") from exc
        if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
            url = urljoin(url, resp.headers["Location"])
            resp.release()
            continue
        break
    assert resp is not None
    status = resp.status
    if status != 200:
        resp.release()
    if status == 429:
        raise RateLimited(_retry_after(resp.headers, connector.clock(),
                                       DEFAULT_RETRY_AFTER), _say("media_rate_limited"),
                          scope=SCOPE)
    if status >= 500:
        raise TransientError(_say("media_server"), code="media_server")
    if status in (404, 410):
        raise _permanent("media_gone")
    if status in (401, 403):
        if how == "signed" and await _credentials_refused(connector):
            raise CredentialsRefused(_say("credentials_refused"))
        raise _permanent("media_forbidden")
    if status != 200:  # too many redirects, or an answer with no file
        raise _permanent("media_unavailable")
    name = posixpath.basename(urlsplit(url).path) or None
    return AttachmentStream(chunks=_chunks(resp), mime=resp.content_type or None,
                            name=name, size=resp.content_length)
