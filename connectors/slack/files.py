"""Streaming a customer's file from Slack with the bot token.

A file's `url_private_download` needs `Authorization: Bearer <bot token>`
(https://docs.slack.dev/reference/objects/file-object/#auth); without a valid one Slack does
not answer 401 but HTTP 200 with its HTML sign-in page, so an HTML answer for a non-HTML file is
a refusal. Redirects are followed by hand so the token is only ever sent to Slack's own hosts
(or the configured API host, i.e. the sandbox).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp

from connectors.base import AttachmentStream
from connectors.slack.errors import DEFAULT_RETRY_AFTER, sentence
from inbox.models import CredentialsRefused, PermanentError, RateLimited, TransientError

if TYPE_CHECKING:
    from connectors.slack.connector import SlackConnector

MAX_REDIRECTS = 3
CHUNK = 64 * 1024


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            yield chunk
    finally:
        resp.release()


def _unavailable() -> PermanentError:
    return PermanentError(sentence("file_unavailable"), code="file_unavailable")


async def fetch(connector: SlackConnector, attachment: Mapping[str, Any]) -> AttachmentStream:
    extra = attachment.get("extra") or {}
    url = extra.get("url_private_download") or extra.get("url_private")
    if not isinstance(url, str) or not url:
        raise _unavailable()
    session = connector.http_session()
    resp: aiohttp.ClientResponse | None = None
    for _ in range(MAX_REDIRECTS + 1):
        if not connector._host_allowed(url):
            raise PermanentError(sentence("file_host_refused"), code="file_host_refused")
        try:
            resp = await session.get(url, allow_redirects=False, headers={
                "Authorization": f"Bearer {connector.account.secret('bot_token')}"})
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(sentence("network"), code="network") from exc
        if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
            url = urljoin(url, resp.headers["Location"])
            resp.release()
            continue
        break
    assert resp is not None
    expected = attachment.get("mime")
    if resp.status == 429:
        resp.release()
        raise RateLimited(float(resp.headers.get("Retry-After") or DEFAULT_RETRY_AFTER),
                          sentence("rate_limited"), scope="files")
    if resp.status >= 500:
        resp.release()
        raise TransientError(sentence("slack_unavailable"), code="slack_unavailable")
    if resp.status == 401:
        resp.release()
        raise CredentialsRefused(sentence("invalid_auth"), code="invalid_auth")
    if resp.status != 200 or (resp.content_type == "text/html"
                              and not str(expected or "").startswith("text/html")):
        resp.release()
        raise _unavailable()
    return AttachmentStream(chunks=_chunks(resp), mime=resp.content_type or expected,
                            name=attachment.get("name"),
                            size=resp.content_length or attachment.get("size"))
