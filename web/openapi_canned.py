"""The OpenAPI paths of canned replies, suggestions and automatic messages (web/openapi.py
adds them to the one document)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web import schemas_canned as c

Helper = Callable[..., dict[str, Any]]


def canned_paths(_op: Helper, _json: Helper, _query: Helper, _ID: dict[str, Any],
                 ) -> dict[str, Any]:
    """Built with web/openapi.py's helpers, handed in (so neither module imports the other)."""
    rw = ("400", "401", "403", "404")
    return {
        "/api/canned-replies": {
            "get": _op("Canned replies the caller may use; q searches shortcut, title, pinyin "
                       "and its initials, and body", _json(c.CannedList), params=[
                           _query("q", {"type": "string", "maxLength": 100},
                                  "what follows / in the reply box"),
                           _query("conversation_id", {"type": "string"},
                                  "fill each body for this conversation"),
                           _query("limit", {"type": "integer", "minimum": 1,
                                            "maximum": 50})]),
            "post": _op("Add a canned reply (team and everyone scopes: admins and the team's "
                        "leads)", _json(c.CannedReply, "Created"), body=c.CannedCreate,
                        status="201")},
        "/api/canned-replies/{id}": {
            "patch": _op("Change a canned reply", _json(c.CannedReply), params=[_ID],
                         body=c.CannedPatch),
            "delete": _op("Remove a canned reply", {"description": "Deleted"}, params=[_ID],
                          status="204")},
        "/api/canned-replies/{id}/use": {"post": _op(
            "The text to insert in a conversation (the customer's language, placeholders "
            "filled); counts one use", _json(c.CannedReply), params=[_ID], body=c.CannedUse)},
        "/api/conversations/{id}/suggestions": {"get": _op(
            "The three canned replies most similar to what the customer wrote last, with "
            "their scores", _json(c.CannedList), params=[_ID])},
        "/api/teams/{id}/auto-messages": {
            "get": _op("A team's automatic messages (each off by default)",
                       _json(c.AutoSettingsOut), role="admin", params=[_ID]),
            "patch": _op("Change a team's automatic messages", _json(c.AutoSettingsOut),
                         role="admin", params=[_ID], body=c.AutoSettings, errors=rw)},
    }
