"""Channel accounts in the database: the one place that reads and writes `accounts`.

Besides what an admin entered (platform, name, sealed credentials, mode, options), an account
document holds what the host keeps for its connector, shared by every process:

- `cursors`: name → value (an update offset, a since_id, an IMAP UID), saved after storing;
- `lease`: `{owner, until}`: which process runs the account's long-lived inbound (one at a time);
- `status` / `last_error`: `active`, `degraded`, `needs_reauth` or `error`, with the last error
  in words; `status_at` when it last changed;
- `pauses`: scope → until (a platform's 429, by method where it limits per method);
- `usage`: "YYYY-MM" → counter → n (billable reads and posts);
- `info`: what the platform told us about the account (ids, granted scopes).

All times are the database's (`inbox.clock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from inbox.db import Database, Doc
from inbox.store import NotFound, oid

STATES = ("active", "degraded", "needs_reauth", "error")


def _id(account_id: str) -> Any:
    """The account's `_id`; an id that is not an ObjectId simply matches nothing."""
    try:
        return oid(account_id)
    except NotFound:
        return account_id


class AccountExists(ValueError):
    """A second account with the same name, or the same platform account twice."""

    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which  # "name" or "platform_id"


def month_key(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def safe_key(key: str) -> str:
    """A counter or cursor name usable as a field name."""
    return key.replace(".", "_").replace("$", "_")


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.coll = db.accounts

    # ------------------------------------------------------------------ documents

    async def list(self, platform: str | None = None) -> list[Doc]:
        flt: Doc = {"platform": platform} if platform else {}
        return await self.coll.find(flt).sort("name", 1).to_list()

    async def get(self, account_id: str) -> Doc:
        doc = await self.coll.find_one({"_id": _id(account_id)})
        if doc is None:
            raise NotFound(account_id)
        return doc

    async def find(self, platform: str, *, name: str | None = None,
                   platform_id: str | None = None) -> Doc | None:
        flt: Doc = {"platform": platform}
        if name is not None:
            flt["name"] = name
        if platform_id is not None:
            flt["platform_id"] = platform_id
        return await self.coll.find_one(flt)

    async def insert(self, doc: Doc) -> None:
        try:
            await self.coll.insert_one(doc)
        except DuplicateKeyError as exc:
            raise AccountExists("platform_id" if "platform_id" in str(exc) else "name") from None

    async def update(self, account_id: str, changes: Mapping[str, Any]) -> Doc:
        try:
            doc = await self.coll.find_one_and_update(
                {"_id": _id(account_id)}, {"$set": dict(changes)}, return_document=True)
        except DuplicateKeyError as exc:
            raise AccountExists("platform_id" if "platform_id" in str(exc) else "name") from None
        if doc is None:
            raise NotFound(account_id)
        return doc

    async def delete(self, account_id: str) -> None:
        await self.coll.delete_one({"_id": _id(account_id)})
        await self.db.account_cache.delete_many({"account_id": account_id})

    async def touch_inbound(self, account_id: str, at: datetime) -> None:
        await self.coll.update_one({"_id": _id(account_id)}, {"$max": {"last_inbound_at": at}})

    # ------------------------------------------------------------------ cursors and the lease

    async def load_cursor(self, account_id: str, name: str) -> Any:
        doc = await self.coll.find_one({"_id": _id(account_id)}, {"cursors": 1, "cursor": 1})
        if doc is None:
            raise NotFound(account_id)
        cursors = doc.get("cursors") or {}
        if name == "default" and "default" not in cursors:
            return doc.get("cursor")  # kept by releases before the cursors map
        return cursors.get(safe_key(name))

    async def save_cursors(self, account_id: str, values: Mapping[str, Any], *,
                           owner: str | None = None) -> bool:
        """Save cursors; with `owner`, only while that owner holds the lease."""
        flt: Doc = {"_id": _id(account_id)}
        if owner is not None:
            flt["lease.owner"] = owner
        res = await self.coll.update_one(
            flt, {"$set": {f"cursors.{safe_key(k)}": v for k, v in values.items()}})
        return res.matched_count == 1

    async def take_lease(self, account_id: str, owner: str, now: datetime,
                         seconds: float) -> bool:
        """Take or renew the account's lease: free, ours, or expired."""
        res = await self.coll.update_one(
            {"_id": _id(account_id), "$or": [
                {"lease": None}, {"lease": {"$exists": False}}, {"lease.owner": owner},
                {"lease.until": {"$lt": now}}]},
            {"$set": {"lease": {"owner": owner, "until": now + timedelta(seconds=seconds)}}})
        return res.matched_count == 1

    async def release_lease(self, account_id: str, owner: str) -> None:
        await self.coll.update_one({"_id": _id(account_id), "lease.owner": owner},
                                   {"$set": {"lease": None}})

    # ------------------------------------------------------------------ health

    async def set_health(self, account_id: str, state: str, *, code: str | None,
                         message: str | None, at: datetime) -> Doc | None:
        """Record the account's state; returns the document as it was when the state or the
        error changed, None when nothing changed (so callers can skip their follow-ups)."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        before = await self.coll.find_one({"_id": _id(account_id)},
                                          {"status": 1, "last_error": 1, "status_at": 1})
        if before is None:  # deleted meanwhile: nothing to report on
            return None
        old_error = before.get("last_error") or {}
        if state == "active":
            if before.get("status", "active") == "active" and not old_error:
                return None
            error = None
        else:
            error = {"code": code or state, "message": message or "", "at": at}
            if before.get("status") == state and old_error.get("code") == error["code"] \
                    and old_error.get("message") == error["message"]:
                return None
        changes: Doc = {"status": state, "last_error": error}
        if before.get("status", "active") != state:
            changes["status_at"] = at
        await self.coll.update_one({"_id": _id(account_id)}, {"$set": changes})
        return before

    async def unavailable(self, now: datetime) -> set[str]:
        """Accounts no reply may be sent for now: credentials refused, or paused as a whole."""
        docs = await self.coll.find(
            {"$or": [{"status": "needs_reauth"}, {"pauses.account": {"$gt": now}}]},
            {"_id": 1}).to_list()
        return {str(d["_id"]) for d in docs}

    # ------------------------------------------------------------------ rate limits, usage, info

    async def pause(self, account_id: str, scope: str, until: datetime) -> None:
        await self.coll.update_one({"_id": _id(account_id)},
                                   {"$max": {f"pauses.{safe_key(scope)}": until}})

    async def pauses(self, account_id: str) -> dict[str, datetime]:
        doc = await self.coll.find_one({"_id": _id(account_id)}, {"pauses": 1})
        return dict((doc or {}).get("pauses") or {})

    async def record_usage(self, account_id: str, month: str, counts: Mapping[str, int]) -> None:
        inc = {f"usage.{month}.{safe_key(k)}": int(n) for k, n in counts.items() if n}
        if inc:
            await self.coll.update_one({"_id": _id(account_id)}, {"$inc": inc})

    async def usage(self, account_id: str, month: str) -> dict[str, int]:
        doc = await self.coll.find_one({"_id": _id(account_id)}, {f"usage.{month}": 1})
        return dict(((doc or {}).get("usage") or {}).get(month) or {})

    async def save_info(self, account_id: str, updates: Mapping[str, Any]) -> None:
        if updates:
            await self.coll.update_one({"_id": _id(account_id)}, {
                "$set": {f"info.{safe_key(k)}": v for k, v in updates.items()}})

    # ------------------------------------------------------------------ a small shared cache

    async def cache_get(self, account_id: str, key: str, now: datetime) -> Any:
        doc = await self.db.account_cache.find_one({"_id": f"{account_id}:{key}"})
        if doc is None or doc["expires_at"] <= now:
            return None
        return doc["value"]

    async def cache_set(self, account_id: str, key: str, value: Any,
                        expires_at: datetime) -> None:
        await self.db.account_cache.update_one(
            {"_id": f"{account_id}:{key}"},
            {"$set": {"account_id": account_id, "value": value, "expires_at": expires_at}},
            upsert=True)

