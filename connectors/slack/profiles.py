"""Who a Slack user is: `users.info` (https://docs.slack.dev/reference/methods/users.info),
cached per account through the runtime's shared cache.

Events carry a user id and at most a partial `user_profile`; the name an agent wants to see,
the avatar and the locale (for the greeting's language) come from `users.info`, a Tier 4
method. The lookup happens after the message is stored, never inside Slack's 3 seconds: the
host calls `SlackConnector.enrich_author` after storing a new message and applies the profile
to the contact, the message's author and the conversation's locale (connectors/runtime.py).
A user Slack does not know is remembered for an hour, so a bad id does not cost a call per
message.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_sdk.errors import SlackApiError

from connectors.slack.errors import slack_code
from inbox.models import Author

if TYPE_CHECKING:
    from connectors.slack.connector import SlackConnector

log = logging.getLogger(__name__)
CACHE_TTL = 24 * 3600.0
MISSING_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    handle: str | None = None
    avatar_url: str | None = None
    locale: str | None = None
    is_bot: bool = False


def cache_key(user_id: str) -> str:
    return f"slack:user:{user_id}"


def _profile(user: dict[str, Any]) -> Profile:
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    name = (profile.get("display_name") or profile.get("real_name") or user.get("real_name")
            or user.get("name") or user.get("id") or "")
    avatar = profile.get("image_192") or profile.get("image_72") or None
    return Profile(name=str(name), handle=user.get("name") or None,
                   avatar_url=str(avatar) if avatar else None,
                   locale=user.get("locale") or None, is_bot=bool(user.get("is_bot")))


async def lookup(connector: SlackConnector, user_id: str) -> Profile | None:
    """The user's profile, from the cache or `users.info`; None if Slack cannot say."""
    if user_id[:1] not in ("U", "W"):
        return None  # a bot id (B...) or garbage: users.info only knows users
    runtime = connector.runtime
    cached = await runtime.cache_get(cache_key(user_id))
    if isinstance(cached, dict):
        return None if cached.get("missing") else Profile(**cached)
    try:
        resp = await connector.web.users_info(user=user_id, include_locale=True)
    except SlackApiError as exc:
        code = slack_code(exc)
        if code in ("user_not_found", "missing_scope", "user_not_visible"):
            log.info("slack account %s: users.info %s: %s", connector.account.id, user_id, code)
            await runtime.cache_set(cache_key(user_id), {"missing": True}, MISSING_TTL)
        return None
    except (aiohttp.ClientError, TimeoutError):
        return None
    user = resp.get("user")
    if not isinstance(user, dict):
        return None
    profile = _profile(user)
    await runtime.cache_set(cache_key(user_id), dataclasses.asdict(profile), CACHE_TTL)
    return profile


async def enrich(connector: SlackConnector, author: Author) -> Author | None:
    profile = await lookup(connector, author.user_id)
    if profile is None:
        return None
    better = dataclasses.replace(
        author, name=profile.name or author.name, handle=profile.handle or author.handle,
        avatar_url=profile.avatar_url or author.avatar_url,
        locale=profile.locale or author.locale, is_bot=author.is_bot or profile.is_bot)
    return None if better == author else better
