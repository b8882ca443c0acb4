"""The agent's consistent name on every channel ("进线名称").

An agent has one `display_name` (and an optional title) chosen by an admin. Each platform shows
it differently, so rendering is a small dispatch table keyed by platform name:

- telegram: a bot cannot change its sender name, so the reply ends with a signature line from
  `identity.signature` (default `— {name} · {brand}`) with the agent's name in bold. The bold is
  a `TextEntity` (offsets in UTF-16 code units, https://core.telegram.org/api/entities) and the
  message is sent *without* parse_mode, so nothing the agent types is ever read as markup.
- slack: `chat.postMessage` can post as the agent (`username`, scope `chat:write.customize`),
  so there is no signature line.
- anything else: the same signature as plain text, no entities (every platform can show it).

X (a short `^{initials}` suffix within 280 weighted characters) slots into `_RENDERERS` later.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inbox.models import TextEntity, utf16_len
from web.settings import IdentitySettings

# Characters a template may put between fields; a separator next to an empty field is dropped.
_SEPARATOR_CHARS = frozenset(" \t·•|,，、/-–—:：;；")
_OPENING = {"(": ")", "（": "）", "[": "]", "【": "】", "<": ">"}


@dataclass(frozen=True, slots=True)
class Rendered:
    """What the customer will see: the text, its formatting, and the sender name if settable."""

    text: str
    entities: tuple[TextEntity, ...] = ()
    username: str | None = None  # platforms that let a bot post under another name (Slack)


@dataclass(frozen=True, slots=True)
class _Context:
    text: str
    name: str
    title: str | None
    brand: str
    greeting: str | None


_Renderer = Callable[[_Context, IdentitySettings], Rendered]


def render(platform: str, text: str, *, agent_name: str, agent_title: str | None,
           identity: IdentitySettings, first_reply: bool, locale: str | None) -> Rendered:
    """Render an agent's reply for `platform`; the agent's own text is kept verbatim."""
    fields = {"name": agent_name, "title": agent_title or "", "brand": identity.brand}
    greeting = None
    if first_reply and identity.greeting_enabled:
        template = _greeting_template(identity, locale)
        if template:
            greeting = _fill(template, fields)[0].strip() or None
    ctx = _Context(text=text.rstrip(), name=agent_name, title=agent_title,
                   brand=identity.brand, greeting=greeting)
    renderer = _RENDERERS.get(platform, _render_plain)
    return renderer(ctx, identity)


def preview(platform: str, text: str, *, agent_name: str, agent_title: str | None,
            identity: IdentitySettings, first_reply: bool, locale: str | None) -> Rendered:
    """What the customer will see, for the reply box in the UI: exactly what `render` sends."""
    return render(platform, text, agent_name=agent_name, agent_title=agent_title,
                  identity=identity, first_reply=first_reply, locale=locale)


def _greeting_template(identity: IdentitySettings, locale: str | None) -> str | None:
    """Exact locale, then its language (`zh` for `zh-TW`), then the default locale."""
    greetings = identity.greetings
    candidates: list[str] = []
    if locale:
        candidates += [locale, locale.split("-")[0].split("_")[0]]
    candidates.append(identity.greeting_default_locale)
    for key in candidates:
        if greetings.get(key):
            return greetings[key]
    return None


def _body(ctx: _Context) -> str:
    return f"{ctx.greeting}\n\n{ctx.text}" if ctx.greeting else ctx.text


def _signature(ctx: _Context, identity: IdentitySettings) -> tuple[str, list[tuple[int, int]]]:
    fields = {"name": ctx.name, "title": ctx.title or "", "brand": ctx.brand}
    return _fill(identity.signature, fields, mark="name")


def _render_telegram(ctx: _Context, identity: IdentitySettings) -> Rendered:
    body = _body(ctx)
    line, spans = _signature(ctx, identity)
    if not line.strip():
        return Rendered(text=body)
    prefix = f"{body}\n\n" if body else ""
    text = prefix + line
    base = utf16_len(prefix)
    entities = tuple(
        TextEntity("bold", base + utf16_len(line[:start]), utf16_len(line[start:end]))
        for start, end in spans if end > start)
    return Rendered(text=text, entities=entities)


def _render_plain(ctx: _Context, identity: IdentitySettings) -> Rendered:
    body = _body(ctx)
    line, _ = _signature(ctx, identity)
    if not line.strip():
        return Rendered(text=body)
    return Rendered(text=f"{body}\n\n{line}" if body else line)


def _render_slack(ctx: _Context, identity: IdentitySettings) -> Rendered:
    username = f"{ctx.name} · {ctx.title}" if ctx.title else ctx.name
    return Rendered(text=_body(ctx), username=username)


_RENDERERS: dict[str, _Renderer] = {
    "telegram": _render_telegram,
    "slack": _render_slack,
}


def _fill(template: str, fields: dict[str, str], *,
          mark: str | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Format `template`, dropping the separator next to any empty field.

    Returns the text and the (start, end) character spans where the field `mark` landed.
    Unknown `{placeholders}` are kept literally so an admin's typo shows instead of crashing.
    Why not `str.format`: with no title, `— {name} · {title} · {brand}` must read
    `— 王 · Acme`, and `— {name} ({title})` must read `— 王`, not `— 王 ()`.
    """
    parts: list[dict[str, Any]] = []  # {"lit": str} or {"field": name, "value": str}
    for literal, field_name, spec, conv in string.Formatter().parse(template):
        if literal:
            parts.append({"lit": literal})
        if field_name is None:
            continue
        if field_name in fields:
            parts.append({"field": field_name, "value": str(fields[field_name])})
        else:
            raw = field_name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
            parts.append({"lit": "{" + raw + "}"})
    _drop_empty_fields(parts)
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for part in parts:
        piece = part.get("lit", part.get("value", ""))
        if mark is not None and part.get("field") == mark:
            spans.append((pos, pos + len(piece)))
        out.append(piece)
        pos += len(piece)
    return "".join(out), spans


def _is_separator(text: str) -> bool:
    stripped = text
    for opening in _OPENING:
        stripped = stripped.replace(opening, "")
    return all(ch in _SEPARATOR_CHARS for ch in stripped)


def _drop_empty_fields(parts: list[dict[str, Any]]) -> None:
    """Remove empty fields with one neighbouring separator: the one before, else after."""
    i = 0
    while i < len(parts):
        part = parts[i]
        if "field" not in part or part["value"]:
            i += 1
            continue
        prev_i = i - 1 if i > 0 and "lit" in parts[i - 1] else None
        next_i = i + 1 if i + 1 < len(parts) and "lit" in parts[i + 1] else None
        has_prev_field = any("field" in p and p["value"] for p in parts[:i])
        has_next_field = any("field" in p and p["value"] for p in parts[i + 1:])
        prev_lit = parts[prev_i]["lit"] if prev_i is not None else ""
        next_lit = parts[next_i]["lit"] if next_i is not None else ""
        # a bracket opened right before the field closes right after it: drop both
        bracket = prev_lit.rstrip()[-1:] if prev_lit.rstrip() else ""
        if bracket in _OPENING and next_lit.lstrip().startswith(_OPENING[bracket]):
            closing = _OPENING[bracket]
            prev_lit = prev_lit.rstrip()[:-1].rstrip()
            next_lit = next_lit.lstrip()[len(closing):]
            if prev_i is not None:
                parts[prev_i]["lit"] = prev_lit
            if next_i is not None:
                parts[next_i]["lit"] = next_lit
        elif has_prev_field and prev_i is not None and _is_separator(prev_lit):
            parts[prev_i]["lit"] = ""
        elif has_next_field and next_i is not None and _is_separator(next_lit):
            parts[next_i]["lit"] = ""
        del parts[i]
