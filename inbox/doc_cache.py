"""Documents kept current from the change feed, so that a follower needs no read per update.

The process's change feed (inbox/changes.py) carries no `updateLookup`: an update event holds
only `updateDescription` (the fields set, removed and arrays truncated, by dotted path). A
follower that wants the whole document — the event hub sends whole conversation rows — keeps
the documents it has seen here and applies each update to its copy; only a document it has not
seen (or an update it cannot apply) costs a read. Every change operation is absolute (a value
set at a path, a path removed, an array cut to a size), so applying an event to a copy read
*after* it happened yields the same document: a read at any moment is a safe starting point.

Bounded (least recently used out); fields a follower must never hold (`raw` payloads,
`credentials`) are not kept. A copy shares nothing with the change it came from: one change
event reaches every subscriber of the feed, and each follower's cache moves at its own pace,
so a nested field edited in place by one must not show up in another's copy, or in the event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from inbox.db import Doc

Key = tuple[str, Any]


class DocCache:
    def __init__(self, size: int = 4096, *, leave_out: Iterable[str] = ("raw", "credentials"),
                 ) -> None:
        self.size = size
        self.leave_out = tuple(leave_out)
        self._docs: OrderedDict[Key, Doc] = OrderedDict()
        self.applied = 0  # updates answered from a copy

    def __len__(self) -> int:
        return len(self._docs)

    def put(self, coll: str, doc: Mapping[str, Any]) -> Doc:
        kept = {k: copy_tree(v) for k, v in doc.items() if k not in self.leave_out}
        key = (coll, kept.get("_id"))
        self._docs[key] = kept
        self._docs.move_to_end(key)
        while len(self._docs) > self.size:
            self._docs.popitem(last=False)
        return kept

    def get(self, coll: str, doc_id: Any) -> Doc | None:
        """The copy of a document, as current as the changes followed so far (None: none)."""
        return self._docs.get((coll, doc_id))

    def drop(self, coll: str, doc_id: Any) -> None:
        self._docs.pop((coll, doc_id), None)

    def clear(self) -> None:
        self._docs.clear()

    def follow(self, change: Mapping[str, Any]) -> Doc | None:
        """Take in one change event in feed order; for an update, the document after it when
        the copy could be brought up to date, else None (the caller reads it)."""
        coll = (change.get("ns") or {}).get("coll")
        doc_id = (change.get("documentKey") or {}).get("_id")
        op = change.get("operationType")
        if coll is None:
            return None
        if op in ("insert", "replace") and change.get("fullDocument"):
            return self.put(coll, change["fullDocument"])
        if op == "delete":
            self.drop(coll, doc_id)
            return None
        if op != "update":
            return None
        doc = self._docs.get((coll, doc_id))
        if doc is None:
            return None
        if not apply_update(doc, change.get("updateDescription") or {}):
            self.drop(coll, doc_id)  # its next update is read afresh
            return None
        self._docs.move_to_end((coll, doc_id))
        self.applied += 1
        return doc


def apply_update(doc: Doc, description: Mapping[str, Any]) -> bool:
    """Apply an `updateDescription` to `doc` in place; False (doc then unreliable) when a
    path does not fit it or the description uses what this does not follow."""
    if description.get("disambiguatedPaths"):
        return False  # field names that look like array indexes: not ours to guess
    for cut in description.get("truncatedArrays") or []:
        target = _walk(doc, str(cut.get("field", "")).split("."))
        if not isinstance(target, list):
            return False
        del target[int(cut.get("newSize", len(target))):]
    for path, value in (description.get("updatedFields") or {}).items():
        if not _set(doc, path.split("."), copy_tree(value)):
            return False
    for path in description.get("removedFields") or []:
        parts = path.split(".")
        parent = _walk(doc, parts[:-1])
        if isinstance(parent, dict):
            parent.pop(parts[-1], None)
        elif isinstance(parent, list) and parts[-1].isdigit():
            if int(parts[-1]) < len(parent):
                parent[int(parts[-1])] = None  # $unset of an element leaves a null
        elif parent is not None:
            return False
    return True


def copy_tree(value: Any) -> Any:
    """A copy of the dicts and lists of a decoded document (its leaves are immutable: str,
    numbers, ObjectId, datetime, bytes), several times faster than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _set(doc: Doc, parts: list[str], value: Any) -> bool:
    cur: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, dict):
            if last:
                cur[part] = value
                return True
            if part not in cur:
                cur[part] = {}  # the server creates the missing levels
            elif not isinstance(cur[part], dict | list):
                return False  # the server refuses such a path: the copy is not the document
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit():
            index = int(part)
            if index > len(cur):
                cur.extend([None] * (index - len(cur)))  # the server pads with nulls
            if last:
                if index == len(cur):
                    cur.append(value)
                else:
                    cur[index] = value
                return True
            if index == len(cur):
                cur.append({})
            if not isinstance(cur[index], dict | list):
                return False
            cur = cur[index]
        else:
            return False
    return False
