"""How long a reply is on X, and what it looks like with the agent's signature. Pure.

Public posts are counted the way X counts them: twitter-text's weighted length with the v3
configuration (https://docs.x.com/fundamentals/counting-characters): code points in the
Latin / general-punctuation ranges weigh 1, everything else (CJK included) 2, any URL 23, an
emoji sequence 2, after NFC normalisation; 280 allowed. `twitter_text` is the import name of
PyPI `twitter-text-parser` (the unrelated PyPI `twitter-text` takes the same name).

DMs allow 10,000 characters (https://docs.x.com/x-api/direct-messages/manage/introduction);
X counts those as plain characters, so DMs are measured in NFC code points.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping
from typing import Any

from twitter_text import parse_tweet
from twitter_text.extract_urls import extract_urls

from inbox.models import AgentIdentity, Measure, RenderContext, Rendered

POST_LIMIT = 280
DM_LIMIT = 10_000
DEFAULT_SIGNATURE = " ^{initials}"


def is_dm(context: RenderContext) -> bool:
    """A reply goes privately when the conversation is a DM or the agent chose "send as DM"."""
    return context.kind == "dm" or context.target == "dm"


def measure(text: str, context: RenderContext) -> Measure:
    if is_dm(context):
        return Measure(len(unicodedata.normalize("NFC", text)), DM_LIMIT, "characters")
    return Measure(parse_tweet(text).weightedLength, POST_LIMIT, "weighted")


def has_url(text: str) -> bool:
    """X bills a post that contains a URL at a higher rate (see `budget.py`)."""
    return bool(extract_urls(text))


class _Fields(dict[str, Any]):
    """Template fields; an unknown `{placeholder}` stays as written instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def signature(template: str, identity: AgentIdentity) -> str:
    fields = _Fields(name=identity.name, initials=identity.initials, brand=identity.brand,
                     title=identity.title or "", team=identity.team or "")
    try:
        return string.Formatter().vformat(template, (), fields)
    except (ValueError, IndexError, AttributeError):  # a broken template: show it as typed
        return template


def render(identity: AgentIdentity, text: str, context: RenderContext, *,
           options: Mapping[str, Any]) -> Rendered:
    """Greeting (when the host chose one for a first reply), the agent's text, then the
    signature suffix, for posts and DMs alike: X shows every reply under the brand's own name,
    so the suffix is what tells the customer which agent wrote (the brand-account habit)."""
    template = options.get("signature_template")
    suffix = signature(template if isinstance(template, str) else DEFAULT_SIGNATURE, identity)
    body = text.strip()
    if identity.greeting:
        body = f"{identity.greeting.strip()}\n{body}" if body else identity.greeting.strip()
    return Rendered(text=body + suffix, shown_name=identity.name,
                    extra={"channel": "dm" if is_dm(context) else "post"})
