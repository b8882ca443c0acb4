"""Slack's message text format ("mrkdwn") in both directions.

Slack escapes only three characters in message text, `&`, `<` and `>`, and uses `<...>` for
every control sequence: user and channel mentions (`<@U123>`, `<#C123|general>`), the
broadcasts `<!channel>` / `<!here>` / `<!everyone>`, user groups (`<!subteam^S123>`) and links
(`<https://x|label>`). See https://docs.slack.dev/messaging/formatting-message-text/#escaping.

Outbound, escaping those three characters is all it takes to make an agent's text inert: no
`<!channel>` ping, no `<https://evil|harmless label>` link; Slack then shows the characters
as typed. Inbound, the control sequences are turned into what a person reads in Slack.
"""

from __future__ import annotations

import re

_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_CONTROL = re.compile(r"<([^<>\n]*)>")


def escape(text: str) -> str:
    """The agent's text as literal characters (the `&` first, or it would double-escape)."""
    for raw, entity in _ESCAPES:
        text = text.replace(raw, entity)
    return text


def unescape(text: str) -> str:
    for raw, entity in reversed(_ESCAPES):
        text = text.replace(entity, raw)
    return text


def _readable(inner: str, own_user_id: str | None) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!subteam^"):
        return label or "@" + target[len("!subteam^"):]
    if target.startswith("!"):
        # <!here>, <!channel>, <!everyone>, <!date^...|fallback>
        return label or "@" + target[1:]
    if target.startswith("mailto:"):
        return label or target[len("mailto:"):]
    if label and label != target:
        return f"{label} ({target})"
    return target


def to_plain(text: str, own_user_id: str | None = None) -> str:
    """Slack text as a person reads it: `<@U0BOT> hi <https://a.b|docs>` → `hi docs (https://a.b)`.

    A mention of our own bot at the very start is dropped: it is how a customer addresses the
    app in a channel (`app_mention`), not part of what they are asking.
    """
    if own_user_id:
        text = re.sub(rf"^\s*<@{re.escape(own_user_id)}(\|[^>]*)?>\s*", "", text)
    plain = _CONTROL.sub(lambda m: _readable(m.group(1), own_user_id), text)
    return unescape(plain)
