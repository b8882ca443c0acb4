"""The name policy without the web: templates, the most specific policy, what every channel
refuses, uniqueness under the brand, shared role names, review."""

from __future__ import annotations

import pytest

from inbox.agents import Agents
from inbox.db import Database
from teams import db as team_db
from teams.names import DEFAULT_ID, NamePolicies, fill, name_problems
from teams.store import Invalid, TeamStore

ZHANG = {"_id": "a1", "display_name": "张伟", "title": "技术支持",
         "name_parts": {"surname": "张", "english_name": "Wei"}}
TEAM = {"_id": "t1", "name": "After-sales", "names": {"zh-CN": "售后"}, "title": "售后服务"}


@pytest.mark.parametrize(("policy", "name", "missing"), [
    ({"template": "{surname}客服"}, "张客服", None),
    ({"template": "{team_title} {name}"}, "售后服务 张伟", None),
    ({"template": "{english_name} @ {brand}"}, "Wei @ Acme", None),
    ({"template": "{team}·{surname}"}, "售后·张", None),
    ({"template": "{given_name}"}, None, "given_name"),
    ({"kind": "role", "role_name": "客服专员"}, "客服专员", None),
])
def test_templates(policy: dict[str, str], name: str | None, missing: str | None) -> None:
    assert fill(policy, ZHANG, TEAM, "Acme", "zh-CN") == (name, missing)


def test_what_no_channel_takes() -> None:
    assert name_problems("张客服", 32) == []
    assert name_problems("张\n客服", 32) == ["the name holds control characters or line breaks"]
    assert name_problems("x" * 40, 32) == ["the name is 40 characters; the policy allows 32"]


async def test_choose_save_uniqueness_and_review(db: Database) -> None:
    await team_db.ensure_indexes(db)
    agents = Agents(db)
    a = await agents.create("zhang", display_name="张伟", password="x" * 10)
    b = await agents.create("zhao", display_name="张晓", password="x" * 10)
    for doc in (a, b):
        await db.agents.update_one({"_id": doc["_id"]}, {"$set": {"name_parts": {
            "surname": "张"}}})
    store = TeamStore(db)
    team = await store.create_team({"name": "售后", "members": [str(a["_id"]), str(b["_id"])]})
    await store.save_label("VIP", None, create=True)
    names = NamePolicies(db, store, "Acme")
    _, plan, _ = await names.save(None, {"team_id": str(team["_id"]),
                                         "template": "{surname}客服"}, None)
    assert not plan.ok and plan.conflicts[0]["name"] == "张客服"
    _, plan, _ = await names.save(None, {"team_id": str(team["_id"]),
                                         "template": "{surname}客服", "shared": True}, None)
    assert plan.ok
    vip, plan, changes = await names.save(None, {"team_id": str(team["_id"]), "group": "VIP",
                                                 "kind": "role", "role_name": "VIP专属客服"},
                                          None)
    assert plan.ok and vip["shared"] is True and len(changes) == 2
    with pytest.raises(Invalid, match="exists already"):
        await names.save(None, {"team_id": str(team["_id"]), "template": "{name}"}, None)
    with pytest.raises(Invalid, match="no format"):
        await names.save(None, {"group": "VIP", "template": "{name:>99}"}, None)
    policies = await names.list()
    assert names.choose(policies, str(team["_id"]), ["VIP"])["_id"] == vip["_id"]
    assert names.choose(policies, str(team["_id"]), [])["template"] == "{surname}客服"
    assert names.choose(policies, "other", ["VIP"])["_id"] == DEFAULT_ID
    _, name, _ = await names.resolve(a, str(team["_id"]), ["VIP"])
    assert name == "VIP专属客服"
    _, name, _ = await names.resolve(a, None, [])
    assert name == "张伟"  # the default policy: the display name, recorded on first use
    # a non-shared name another agent already shows under the brand is refused
    _, plan, _ = await names.save(DEFAULT_ID, {"template": "{surname}客服", "shared": False},
                                  None)
    assert not plan.ok
    due = await names.names(unreviewed_days=0)
    reviewed = await names.review(due[0]["_id"], "boss")
    assert reviewed["reviewed_by"] == "boss"
