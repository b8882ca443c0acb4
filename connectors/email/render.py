"""A reply as a mail: the agent's name in From, threading headers, a text and an HTML part.

The From display name comes from the account's template (default "{name} · {brand}", so the
customer sees "张客服 · Acme 客服部 <support@acme.com>"); the policy encodes it as an RFC 2047
encoded word when it is not ASCII. `In-Reply-To` names the customer's mail and `References`
the thread, so the customer's client threads the reply (RFC 5322 §3.6.4). The `Message-ID`
is of our own domain, `sb.<our message id>.<random>@<domain>`, and is what `send` returns as
the platform id and as a thread alias of the conversation; a bounce later names it, and
`normalise.our_message_id` reads our message id back out of it for the outbox.
`X-Switchboard` marks the mail as ours, so a copy that lands back in the folder is ignored.
`Auto-Submitted` is not set: an agent's reply is written by a person (RFC 3834 §5).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from connectors.email import text as mailtext
from connectors.email.normalise import OWN_HEADER, SYNTHETIC_DOMAIN
from connectors.email.settings import DEFAULT_TEMPLATE, MailSettings
from inbox.models import (
    AgentIdentity,
    Measure,
    OutboundMessage,
    PermanentError,
    RenderContext,
    Rendered,
)

MAX_CHARS = 100_000
MAX_REFERENCES = 20
_EDGES = " \t·•|-–—,/"


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, identity: AgentIdentity, *, lead: bool = True) -> str:
    """A template filled with the agent's fields; separators left dangling by an empty field
    ("{name} · {brand}" without a brand) are trimmed (at the start too when `lead`: a
    signature's leading "— " is the operator's choice and stays)."""
    values = _Keep(name=identity.name, brand=identity.brand, title=identity.title or "",
                   team=identity.team or "")
    try:
        filled = template.format_map(values)
    except (ValueError, IndexError, AttributeError):
        filled = DEFAULT_TEMPLATE.format_map(values)
    filled = re.sub(r"[ \t]+", " ", filled)
    trimmed = filled.strip(_EDGES) if lead else filled.rstrip(_EDGES).strip()
    return trimmed or identity.name


def display_name(settings: MailSettings, identity: AgentIdentity) -> str:
    return " ".join(fill(settings.template, identity).split())


def subject_for(subject: str | None) -> str | None:
    base = " ".join((subject or "").split())
    if not base:
        return None
    return base if mailtext.has_reply_prefix(base) else f"Re: {base}"


def _html(greeting: str | None, body: str, signature: str | None) -> str:
    def block(value: str) -> str:
        paragraphs = [p for p in re.split(r"\n\s*\n", value.strip()) if p.strip()]
        return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)

    parts = ['<div style="font-family:sans-serif;font-size:14px;line-height:1.5">']
    if greeting:
        parts.append(block(greeting))
    parts.append(block(body))
    if signature:
        parts.append('<p style="color:#555">-- <br>'
                     f"{html.escape(signature).replace(chr(10), '<br>')}</p>")
    parts.append("</div>")
    return "".join(parts)


def render(settings: MailSettings, identity: AgentIdentity, body: str,
           context: RenderContext) -> Rendered:
    """Greeting, text and the signature (after the "-- " delimiter mail clients fold)."""
    greeting = (identity.greeting or "").strip() or None
    signature = (fill(identity.signature, identity, lead=False)
                 if identity.signature.strip() else None)
    pieces = [p for p in (greeting, body.strip()) if p]
    plain = "\n\n".join(pieces)
    if signature:
        plain = f"{plain}\n\n-- \n{signature}"
    shown = display_name(settings, identity)
    return Rendered(text=plain, subject=subject_for(context.subject),
                    html=_html(greeting, body, signature), shown_name=shown,
                    extra={"from": str(Address(shown, addr_spec=settings.address))})


def measure(body: str) -> Measure:
    return Measure(used=len(body), limit=MAX_CHARS, unit="characters")


def _real_ids(ids: Iterable[str | None]) -> list[str]:
    """Message-IDs we may name in headers: not our synthetic ones, each once, in order."""
    seen: dict[str, None] = {}
    for one in ids:
        value = (one or "").strip().strip("<>")
        if value and "@" in value and not value.endswith(SYNTHETIC_DOMAIN) and not any(
                c.isspace() or c in "<>" for c in value):
            seen.setdefault(value, None)
    return list(seen)


def own_message_id(message_id: str, domain: str) -> str:
    """`sb.<our id>.<random>@<our domain>`: of our domain (RFC 5322 §3.6.4), unique, and
    naming our reply, so a bounce that returns only this id still says which reply failed
    (normalise.our_message_id reads it back)."""
    ours = re.sub(r"[^0-9A-Za-z_-]", "", message_id)[:64] or "reply"
    return f"sb.{ours}.{secrets.token_hex(8)}@{domain or 'localhost'}"


def recipients_of(outbound: OutboundMessage) -> list[str]:
    """Where the answered mail asked replies to go (its Reply-To, kept as `reply_route`),
    unless the reply names other recipients than the author; else the author's address.
    The host fills `recipients` with the author, so the route wins over that default."""
    routed = (outbound.reply_route or {}).get("to")
    routed = [str(r) for r in routed] if isinstance(routed, list) else []
    named = [r for r in outbound.recipients if r]
    only_author = not named or [r.lower() for r in named] == [
        (outbound.reply_to_author or "").lower()]
    chosen = (routed if routed and only_author else named) or (outbound.reply_to_author or "",)
    found = [r.strip() for r in chosen]
    valid = [r for r in found if "@" in r and not any(c.isspace() or c in "<>,;" for c in r)]
    if not valid:
        raise PermanentError("This conversation has no customer address to reply to.",
                             code="no_recipient")
    return list(dict.fromkeys(valid))


def compose(settings: MailSettings, outbound: OutboundMessage,
            now: datetime | None = None) -> tuple[EmailMessage, list[str], str]:
    """The mail to send, its recipients, and its Message-ID without brackets."""
    rendered = outbound.rendered or Rendered(text=outbound.text)
    recipients = recipients_of(outbound)
    msg = EmailMessage(policy=policy.SMTP)
    try:
        msg["From"] = Address(rendered.shown_name or outbound.agent_name or "",
                              addr_spec=settings.address)
        msg["To"] = ", ".join(recipients)
    except (ValueError, IndexError) as exc:
        raise PermanentError(f"An address of this reply is not valid: {exc}",
                             code="invalid_address") from exc
    subject = rendered.subject or subject_for(outbound.subject)
    if subject:
        msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    message_id = own_message_id(str(outbound.message_id), settings.domain)
    msg["Message-ID"] = f"<{message_id}>"
    parent = _real_ids([outbound.reply_to])
    if parent:
        msg["In-Reply-To"] = f"<{parent[0]}>"
    references = _real_ids([*(outbound.references or outbound.thread_aliases), *parent])
    if len(references) > MAX_REFERENCES:  # RFC 5322 §3.6.4: keep the root and the newest
        references = [references[0], *references[-(MAX_REFERENCES - 1):]]
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg[OWN_HEADER] = str(outbound.message_id)
    # base64 rather than 8bit: CJK text stays compact and needs no 8BITMIME on the way.
    msg.set_content(rendered.text or outbound.text, charset="utf-8", cte="base64")
    msg.add_alternative(rendered.html or _html(None, rendered.text or outbound.text, None),
                        subtype="html", charset="utf-8", cte="base64")
    return msg, recipients, message_id
