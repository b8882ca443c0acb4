"""Shared helpers for connectors' `render`: filling the operator's name templates.

Templates are the operator's (`— {name} · {brand}`, `{name} · {brand}` in an email's From line,
` ^{initials}` on X): a field left empty takes one neighbouring separator with it, so a missing
title never leaves `— 王 ·` or `王 ()` behind, and an unknown `{placeholder}` is kept literally so
an admin's typo shows instead of crashing.
"""

from __future__ import annotations

import string
from typing import Any

from inbox.models import AgentIdentity

# Characters a template may put between fields; a separator next to an empty field is dropped.
_SEPARATOR_CHARS = frozenset(" \t·•|,，、/-–—:：;；")
_OPENING = {"(": ")", "（": "）", "[": "]", "【": "】", "<": ">"}


def identity_fields(identity: AgentIdentity) -> dict[str, str]:
    """The placeholders every name template may use."""
    return {"name": identity.name, "title": identity.title or "", "brand": identity.brand,
            "initials": identity.initials, "team": identity.team or ""}


def signature_line(identity: AgentIdentity, template: str | None = None,
                   ) -> tuple[str, list[tuple[int, int]]]:
    """The signature filled in, and the character spans where the agent's name landed."""
    return fill(identity.signature if template is None else template, identity_fields(identity),
                mark="name")


def with_greeting(identity: AgentIdentity, text: str) -> str:
    """The agent's text, after the greeting of a first reply when there is one."""
    body = text.rstrip()
    return f"{identity.greeting}\n\n{body}" if identity.greeting else body


def with_signature(identity: AgentIdentity, text: str, template: str | None = None) -> str:
    """Greeting, text and the signature line below, as plain text (any platform can show it)."""
    body = with_greeting(identity, text)
    line, _ = signature_line(identity, template)
    if not line.strip():
        return body
    return f"{body}\n\n{line}" if body else line


def fill(template: str, fields: dict[str, str], *,
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
