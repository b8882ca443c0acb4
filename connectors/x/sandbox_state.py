"""The state behind the fake X API (sandbox.py): users, posts, DMs, rate windows, OAuth.

Objects are rendered the way X v2 renders them (https://docs.x.com/x-api/fundamentals/
data-dictionary): ids as strings, `id`, `text`, `edit_history_tweet_ids` by default and the
other fields only when `tweet.fields` / `dm_event.fields` / `user.fields` / `media.fields` ask
for them; expansions put referenced objects into `includes`.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_sig

WINDOW_S = 900.0
# Per 15-minute window, per user (https://docs.x.com/x-api/fundamentals/rate-limits).
LIMITS: dict[str, int] = {"users/me": 75, "mentions": 300, "dm_events": 15, "tweets": 200,
                          "dm_send": 15, "activity": 500, "webhooks": 450, "token": 450}
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")
_ids = itertools.count(1_900_000_000_000_000_000)


def next_id() -> str:
    return str(next(_ids))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def problem(status: int, title: str, detail: str, ptype: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": ptype, "status": status}


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


@dataclass
class App:
    consumer_key: str
    consumer_secret: str
    bearer: str = ""


@dataclass
class User:
    id: str
    username: str
    name: str
    profile_image_url: str = ""
    app_key: str | None = None  # set for an account that authorised an app (our side)
    access_token: str | None = None
    access_token_secret: str | None = None
    dms_open: bool = True

    def render(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        if "profile_image_url" in fields and self.profile_image_url:
            out["profile_image_url"] = self.profile_image_url
        return out


@dataclass
class Media:
    """One media object; with `data`, the sandbox serves the file itself and gives it a `url`
    when the post or DM carrying it is injected (see `XSandbox.photo`)."""

    media_key: str
    type: str
    url: str | None = None
    preview_image_url: str | None = None
    variants: list[dict[str, Any]] | None = None
    data: bytes | None = field(default=None, repr=False)
    mime: str = "image/jpeg"

    def render(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"media_key": self.media_key, "type": self.type}
        for name in ("url", "preview_image_url", "variants"):
            value = getattr(self, name)
            if value and name in fields:
                out[name] = value
        return out


@dataclass
class HostedFile:
    """A file the sandbox serves: public (pbs/video.twimg.com) or, with `participants`, a DM's
    (ton.twitter.com: an OAuth 1.0a signed GET by one of them)."""

    data: bytes = field(repr=False)
    mime: str
    participants: tuple[str, ...] | None = None


def tiny_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A small solid-colour PNG, made here so the sandbox needs no image files."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2,
                                                                  0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@dataclass
class Post:
    id: str
    author_id: str
    text: str
    created_at: float
    conversation_id: str
    in_reply_to_user_id: str | None = None
    referenced: list[tuple[str, str]] = field(default_factory=list)
    mentions: list[tuple[str, str, int, int]] = field(default_factory=list)  # id, name, s, e
    media: list[Media] = field(default_factory=list)
    edit_history: list[str] = field(default_factory=list)

    @property
    def superseded(self) -> bool:
        return bool(self.edit_history) and self.edit_history[-1] != self.id

    def mentions_user(self, user_id: str) -> bool:
        return any(m[0] == user_id for m in self.mentions)

    def render(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text,
                               "edit_history_tweet_ids": list(self.edit_history or [self.id])}
        optional: dict[str, Any] = {
            "author_id": self.author_id, "created_at": iso(self.created_at),
            "conversation_id": self.conversation_id,
            "in_reply_to_user_id": self.in_reply_to_user_id,
            "referenced_tweets": [{"type": t, "id": i} for t, i in self.referenced] or None,
            "attachments": {"media_keys": [m.media_key for m in self.media]}
            if self.media else None,
            "entities": {"mentions": [{"start": s, "end": e, "username": n, "id": i}
                                      for i, n, s, e in self.mentions]} if self.mentions else None,
        }
        out.update({k: v for k, v in optional.items() if k in fields and v is not None})
        return out


@dataclass
class DMEvent:
    id: str
    sender_id: str
    conversation_id: str
    text: str
    created_at: float
    media: list[Media] = field(default_factory=list)

    @property
    def participants(self) -> list[str]:
        return self.conversation_id.split("-")

    def render(self, fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "event_type": "MessageCreate", "text": self.text}
        optional: dict[str, Any] = {
            "sender_id": self.sender_id, "dm_conversation_id": self.conversation_id,
            "created_at": iso(self.created_at),
            "attachments": {"media_keys": [m.media_key for m in self.media]}
            if self.media else None}
        out.update({k: v for k, v in optional.items() if k in fields and v is not None})
        return out

    def legacy(self, recipient: str) -> dict[str, Any]:
        """The Activity API's `dm.received` shape (a v1.1 message_create event)."""
        return {"type": "message_create", "id": self.id,
                "created_timestamp": str(int(self.created_at * 1000)),
                "message_create": {"target": {"recipient_id": recipient},
                                   "sender_id": self.sender_id,
                                   "message_data": {"text": self.text, "entities": {
                                       "hashtags": [], "symbols": [], "user_mentions": [],
                                       "urls": []}}}}


def conversation_of(a: str, b: str) -> str:
    low, high = sorted((a, b), key=int)
    return f"{low}-{high}"


def find_mentions(text: str, users: Iterable[User]) -> list[tuple[str, str, int, int]]:
    by_name = {u.username.lower(): u for u in users}
    found = []
    for m in _MENTION.finditer(text):
        user = by_name.get(m.group(1).lower())
        if user is not None:
            found.append((user.id, user.username, m.start(), m.end()))
    return found


@dataclass
class Window:
    start: float
    used: int = 0


class RateWindows:
    """Real counters per (endpoint family, caller) and a 15-minute window each."""

    def __init__(self, clock: Callable[[], float],
                 limits: Mapping[str, int] | None = None) -> None:
        self.clock = clock
        self.limits = {**LIMITS, **(limits or {})}
        self.windows: dict[tuple[str, str], Window] = {}

    def take(self, family: str, caller: str) -> dict[str, str]:
        now = self.clock()
        limit = self.limits.get(family, 300)
        win = self.windows.get((family, caller))
        if win is None or now >= win.start + WINDOW_S:
            win = self.windows[(family, caller)] = Window(start=now)
        reset = str(int(win.start + WINDOW_S))
        if win.used >= limit:
            raise ApiError(429, problem(429, "Too Many Requests", "Too Many Requests"),
                           {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": "0",
                            "x-rate-limit-reset": reset})
        win.used += 1
        return {"x-rate-limit-limit": str(limit),
                "x-rate-limit-remaining": str(limit - win.used), "x-rate-limit-reset": reset}


def oauth_params(header: str) -> dict[str, str]:
    params = dict(oauth_sig.collect_parameters(headers={"Authorization": header},
                                               exclude_oauth_signature=False))
    return {k: unquote(v) if isinstance(v, str) else v for k, v in params.items()}


def verify_oauth1(method: str, url: str, header: str, consumer_secret: str,
                  token_secret: str) -> bool:
    """Checks an OAuth 1.0a HMAC-SHA1 signature for the URL the request reached
    (https://docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature)."""
    query = url.partition("?")[2]
    params = oauth_sig.collect_parameters(uri_query=query, headers={"Authorization": header},
                                          exclude_oauth_signature=True)
    req = OAuthRequest(url, http_method=method, headers={"Authorization": header})
    req.params = params
    req.signature = oauth_params(header).get("oauth_signature", "")
    return bool(oauth_sig.verify_hmac_sha1(req, consumer_secret, token_secret))


def fields_of(query: Mapping[str, str], name: str) -> set[str]:
    return {f for f in (query.get(name) or "").split(",") if f}


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
