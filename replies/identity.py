"""The agent's consistent name on every channel ("进线名称"): who a reply is from.

An admin sets each agent's `display_name` (and an optional title); agents cannot type another
name. This module turns an agent, the operator's identity settings and the customer's locale
into an `AgentIdentity`; the channel's connector renders it (`Connector.render`): Telegram as a
signature line with the name in bold, Slack as the sender name, X as a short suffix, email in
the From line. The reply records `Rendered.shown_name`, the exact name the customer saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from babel import Locale, UnknownLocaleError

from connectors.base import Connector
from connectors.rendering import fill
from inbox.models import AgentIdentity, RenderContext, Rendered
from replies.settings import IdentitySettings


def greeting_template(identity: IdentitySettings, locale: str | None) -> str | None:
    """The greeting for the customer's locale: the exact tag, then its language and script
    (`zh-hans` → `zh-CN`, never `zh-TW` → `zh-CN`), then its language, then the default."""
    greetings = identity.greetings
    for key in _candidates(locale, list(greetings)):
        if greetings.get(key):
            return greetings[key]
    default = identity.greeting_default_locale
    return greetings.get(default) or None


def locale_candidates(locale: str | None, available: list[str]) -> list[str]:
    """The keys of `available` (locale tags) that serve `locale`, best first: the exact tag,
    then the same language in the same script, then the bare language."""
    return _candidates(locale, available)


def _candidates(locale: str | None, available: list[str]) -> list[str]:
    if not locale:
        return []
    tag = locale.replace("_", "-")
    out = [k for k in available if k.lower() == tag.lower()]
    try:
        wanted = Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return out + [k for k in available if k.lower() == tag.split("-")[0].lower()]
    wanted_script = wanted.script or _likely_script(wanted)
    for key in available:
        try:
            have = Locale.parse(key.replace("_", "-"), sep="-")
        except (ValueError, UnknownLocaleError):
            continue
        if have.language != wanted.language:
            continue
        have_script = have.script or _likely_script(have)
        if wanted_script and have_script and wanted_script != have_script:
            continue  # Traditional and Simplified Chinese are different audiences
        out.append(key)
    return out


def _likely_script(locale: Locale) -> str | None:
    """zh-CN → Hans, zh-TW → Hant (Babel's likely subtags)."""
    from babel.core import get_global

    likely = get_global("likely_subtags")
    key = f"{locale.language}_{locale.territory}" if locale.territory else locale.language
    full = likely.get(key) or likely.get(locale.language)
    if not full:
        return None
    parts = full.split("_")
    return next((p for p in parts[1:] if len(p) == 4), None)


@dataclass(frozen=True, slots=True)
class PolicyName:
    """The name the name policy (teams/names.py) gave the agent for this conversation: the
    only name a reply is sent under once it is given."""

    name: str
    title: str | None = None
    team: str | None = None


def agent_identity(agent: Mapping[str, Any], identity: IdentitySettings, *,
                   first_reply: bool, locale: str | None,
                   policy: PolicyName | None = None) -> AgentIdentity:
    """Who the customer is to see, with the greeting a first reply carries in their locale.
    With `policy`, its name and title replace the agent's display name and title."""
    name = policy.name if policy else str(agent.get("display_name") or "")
    title = (policy.title if policy else agent.get("title")) or None
    fields = {"name": name, "title": title or "", "brand": identity.brand}
    greeting = None
    if first_reply and identity.greeting_enabled:
        template = greeting_template(identity, locale)
        if template:
            greeting = fill(template, fields)[0].strip() or None
    return AgentIdentity(name=name, title=title, brand=identity.brand,
                         signature=identity.signature, greeting=greeting,
                         avatar_url=agent.get("avatar_url") or None,
                         team=policy.team if policy else None)


def render(connector: Connector, text: str, *, agent: Mapping[str, Any],
           identity: IdentitySettings, context: RenderContext,
           policy: PolicyName | None = None) -> Rendered:
    """Render an agent's reply for the conversation's channel; the agent's text is kept
    verbatim inside whatever the channel adds around it."""
    who = agent_identity(agent, identity, first_reply=context.first_reply,
                         locale=context.customer_locale, policy=policy)
    return render_as(connector, who, text, context)


def render_as(connector: Connector, who: AgentIdentity, text: str,
              context: RenderContext) -> Rendered:
    """Render `text` under an identity already chosen (an agent's, or a team's for an
    automatic message). Buttons go to a connector that renders them natively; for any other
    the choices are spelled out as text (`buttons_text`) and read back from the customer's
    next message by the host."""
    if context.buttons and not getattr(connector, "native_buttons", False):
        if context.buttons_text:
            text = f"{text}\n\n{context.buttons_text}" if text else context.buttons_text
        context = replace(context, buttons=())
    rendered = connector.render(who, text, context)
    if not rendered.shown_name:
        rendered = replace(rendered, shown_name=who.name)
    return rendered
