"""Agents, their passwords (argon2), API tokens and login sessions.

Tokens and session ids are random 32-byte strings shown once; only their SHA-256 is stored, so a
copy of the database does not let anyone in. Every lookup checks that the agent is still active,
so deactivating an agent locks out its sessions and tokens at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from inbox.db import Database, Doc
from inbox.store import NotFound, oid

Role = Literal["admin", "agent"]
ROLES: tuple[str, ...] = ("admin", "agent")

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("switchboard-timing-equaliser")


class AgentExists(ValueError):
    pass


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


class Agents:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, login: str, *, display_name: str, password: str,
                     title: str | None = None, role: Role = "agent",
                     timezone: str | None = None, locale: str | None = None) -> Doc:
        doc: Doc = {
            "_id": ObjectId(), "login": login.strip().lower(), "display_name": display_name,
            "title": title or None, "role": role, "active": True,
            "password_hash": _hasher.hash(password), "teams": [], "timezone": timezone,
            "locale": locale, "created_at": datetime.now(UTC)}
        try:
            await self.db.agents.insert_one(doc)
        except DuplicateKeyError:
            raise AgentExists(f"an agent with login '{doc['login']}' already exists") from None
        return doc

    async def get(self, agent_id: str) -> Doc:
        doc = await self.db.agents.find_one({"_id": oid(agent_id)})
        if doc is None:
            raise NotFound(agent_id)
        return doc

    async def by_login(self, login: str) -> Doc | None:
        return await self.db.agents.find_one({"login": login.strip().lower()})

    async def list(self) -> list[Doc]:  # type: ignore[valid-type]
        return await self.db.agents.find({}).sort("login", 1).to_list()

    async def update(self, agent_id: str, changes: dict[str, Any]) -> Doc:
        if "password" in changes:
            changes = {**changes, "password_hash": _hasher.hash(changes.pop("password"))}
        doc = await self.db.agents.find_one_and_update(
            {"_id": oid(agent_id)}, {"$set": changes}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound(agent_id)
        if changes.get("active") is False:
            await self.db.sessions.delete_many({"agent_id": str(doc["_id"])})
        return doc

    async def verify_password(self, login: str, password: str) -> Doc | None:
        """The active agent with this login and password, or None; same time either way."""
        agent = await self.by_login(login)
        try:
            _hasher.verify(agent["password_hash"] if agent else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if agent is None or not agent.get("active", False):
            return None
        return agent

    # API tokens

    async def create_token(self, agent_id: str, name: str = "") -> tuple[str, Doc]:
        token = new_token("sbt")
        doc: Doc = {"_id": ObjectId(), "agent_id": agent_id, "token_hash": _digest(token),
                    "name": name, "created_at": datetime.now(UTC), "last_used_at": None}
        await self.db.api_tokens.insert_one(doc)
        return token, doc

    async def token(self, token_id: str) -> Doc | None:
        """An API token's record (never its hash)."""
        return await self.db.api_tokens.find_one({"_id": oid(token_id)}, {"token_hash": 0})

    async def revoke_token(self, token_id: str) -> bool:
        result = await self.db.api_tokens.delete_one({"_id": oid(token_id)})
        return result.deleted_count == 1

    async def tokens_of(self, agent_id: str) -> list[Doc]:
        return await self.db.api_tokens.find({"agent_id": agent_id}, {"token_hash": 0}).to_list()

    async def agent_for_token(self, token: str) -> Doc | None:
        doc = await self.db.api_tokens.find_one({"token_hash": _digest(token)})
        return await self._active(doc["agent_id"]) if doc else None

    # sessions

    async def create_session(self, agent_id: str, days: int) -> tuple[str, Doc]:
        token = new_token("sbs")
        now = datetime.now(UTC)
        doc: Doc = {"_id": ObjectId(), "agent_id": agent_id, "token_hash": _digest(token),
                    "csrf": secrets.token_urlsafe(24), "created_at": now,
                    "expires_at": now + timedelta(days=days)}
        await self.db.sessions.insert_one(doc)
        return token, doc

    async def session(self, token: str) -> tuple[Doc, Doc] | None:
        doc = await self.db.sessions.find_one({"token_hash": _digest(token)})
        if doc is None or doc["expires_at"] <= datetime.now(UTC):
            return None
        agent = await self._active(doc["agent_id"])
        return (doc, agent) if agent else None

    async def end_session(self, token: str) -> None:
        await self.db.sessions.delete_one({"token_hash": _digest(token)})

    async def _active(self, agent_id: str) -> Doc | None:
        try:
            agent = await self.db.agents.find_one({"_id": oid(agent_id), "active": True})
        except NotFound:
            return None
        return agent
