"""A name checked against every connected channel before a policy may use it, and the preview
of how it renders on each: through each connector's own `render` and `measure`, so no platform
rule is written here.

What the contract does not say yet (and a connector's `render` cannot refuse): a platform's own
limit on a sender name (a short customer-service nickname, a sender-name field), and the
characters it refuses. Until connectors declare them, a name is refused here when rendering it
fails, when the rendered name is not what the policy gave, or when the frame around an empty
reply (signature, sender line) leaves less than half of the channel's length for the text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import Connector
from inbox.models import AgentIdentity, RenderContext
from replies.settings import IdentitySettings

ROOM = 0.5  # of the channel's limit that must stay free for the agent's text


def preview(connectors: Sequence[tuple[Mapping[str, Any], Connector]], name: str,
            identity: IdentitySettings, *, title: str | None = None,
            team: str | None = None) -> list[dict[str, Any]]:
    """Per connected account: what the customer sees, and why it cannot be used (if so)."""
    who = AgentIdentity(name=name, title=title, brand=identity.brand,
                        signature=identity.signature, team=team)
    out = []
    for account, connector in connectors:
        row: dict[str, Any] = {"account_id": str(account.get("_id") or account.get("id")),
                               "account_name": account.get("name"),
                               "platform": connector.platform, "ok": True, "problem": None}
        ctx = RenderContext()
        try:
            rendered = connector.render(who, "", ctx)
            size = connector.measure(rendered.text, ctx)
        except Exception as exc:  # a connector refusing the name is what this is for
            row.update(ok=False, problem=f"{connector.platform} cannot render it: "
                                         f"{type(exc).__name__}: {exc}")
            out.append(row)
            continue
        shown = rendered.shown_name or name
        row.update(shown_name=shown, username=rendered.username, text=rendered.text,
                   sender=(rendered.extra or {}).get("from"), used=size.used,
                   limit=size.limit, unit=size.unit)
        if name not in shown and name not in rendered.text:
            row.update(ok=False, problem=f"{connector.platform} would not show the name")
        elif size.used > size.limit * ROOM:
            row.update(ok=False, problem=f"on {connector.platform} the name and signature take "
                                         f"{size.used} of {size.limit} {size.unit}")
        out.append(row)
    return out


def problems(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"{r.get('account_name')}: {r['problem']}" for r in rows if not r.get("ok")]
