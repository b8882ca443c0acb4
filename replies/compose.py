"""A reply before it is queued: rendered by the channel's connector, measured in the channel's
own units, with the conversation context its send will need.

The reply box's preview and counter (`GET …/compose?text=`) and the API's validation
(`POST …/messages`) both come from here, so no platform rule is written twice, nor in JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import Connector
from inbox.models import ConversationKind, Measure, RenderContext, Rendered
from replies.identity import PolicyName, render
from replies.outbox import ReplyContext, is_first_reply
from replies.settings import IdentitySettings


@dataclass(frozen=True, slots=True)
class Draft:
    rendered: Rendered
    measure: Measure
    context: ReplyContext
    render_context: RenderContext


def render_context(conversation: Mapping[str, Any], agent_id: str, *,
                   last_inbound: Mapping[str, Any] | None, target: str = "thread",
                   ) -> RenderContext:
    kind: ConversationKind = conversation.get("kind") or "dm"
    author = (last_inbound or {}).get("author") or {}
    return RenderContext(kind=kind, first_reply=is_first_reply(conversation, agent_id),
                         customer_locale=conversation.get("customer_locale")
                         or author.get("locale"), subject=conversation.get("title"),
                         target=target)


def draft(connector: Connector, conversation: Mapping[str, Any], agent: Mapping[str, Any],
          identity: IdentitySettings, text: str, *, last_inbound: Mapping[str, Any] | None,
          target: str = "thread", policy: PolicyName | None = None) -> Draft:
    ctx = render_context(conversation, str(agent["_id"]), last_inbound=last_inbound,
                         target=target)
    rendered = render(connector, text, agent=agent, identity=identity, context=ctx,
                      policy=policy)
    measure = connector.measure(rendered.text, ctx)
    author = (last_inbound or {}).get("author") or {}
    reply_to_author = author.get("user_id")
    context = ReplyContext(
        reply_to=(last_inbound or {}).get("external_id"), reply_to_author=reply_to_author,
        target=target, recipients=(reply_to_author,) if reply_to_author else (),
        references=tuple(conversation.get("thread_keys") or ()),
        reply_route=(last_inbound or {}).get("reply_route"))
    return Draft(rendered=rendered, measure=measure, context=context, render_context=ctx)
