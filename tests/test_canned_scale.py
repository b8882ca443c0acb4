"""Canned replies at a size a large team keeps (2,000, a tenth of them Chinese-titled
variants of the labelled set): the reply box's search and the suggestions stay interactive,
and a search reads the whole set from the database only after a change. The timings are
printed for the record; the project asserts no timings in tests (bench/ measures)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bson import ObjectId

from inbox.db import Database
from measures.canned import CannedReplies, Viewer
from measures.suggest import suggest

FIXTURES = Path(__file__).parent / "fixtures" / "canned"
SIZE = 2000


async def test_search_and_suggestions_at_2000_replies(db: Database) -> None:
    base = json.loads((FIXTURES / "replies.json").read_text("utf-8"))
    docs = []
    for i in range(SIZE):
        src = base[i % len(base)]
        docs.append({"_id": ObjectId(), "shortcut": f"{src['shortcut']}{i}",
                     "title": f"{src['title']}（{i}）", "body": src["body"],
                     "examples": src.get("examples", []), "scope": "everyone",
                     "team_id": None, "owner_id": None, "uses": i % 7})
    await db.canned_replies.insert_many(docs)
    canned = CannedReplies(db)
    who = Viewer("a", admin=False, member_of=frozenset(), lead_of=frozenset())

    started = time.perf_counter()
    await canned.all()
    first = time.perf_counter() - started  # reads and keys every reply
    timings = []
    for q in ("/thlc", "/tuihuo", "/wl", "/zz", "退款", "/thk"):
        started = time.perf_counter()
        found = await canned.search(who, q)
        timings.append(time.perf_counter() - started)
        assert found, q
    await canned.update(Viewer("a", admin=True, member_of=frozenset(), lead_of=frozenset()),
                        str(docs[0]["_id"]), {"title": "退货流程（改）"})
    started = time.perf_counter()
    await canned.all()
    reload = time.perf_counter() - started  # after one change: the others' keys are cached
    visible = [d for d, _ in await canned.visible(who)]
    started = time.perf_counter()
    suggest(visible, "warm the index")
    build = time.perf_counter() - started  # segments every reply once
    await canned.update(Viewer("a", admin=True, member_of=frozenset(), lead_of=frozenset()),
                        str(docs[1]["_id"]), {"title": "退款到账时间（改）"})
    visible = [d for d, _ in await canned.visible(who)]
    started = time.perf_counter()
    suggest(visible, "rebuild after one change")
    rebuild = time.perf_counter() - started
    started = time.perf_counter()
    top = suggest(visible, "我昨天退的货，钱到现在还没到账")
    suggestion = time.perf_counter() - started
    print(f"2,000 replies: first load {first * 1000:.0f} ms, after a change "
          f"{reload * 1000:.0f} ms; suggestion index {build * 1000:.0f} ms, after a change "
          f"{rebuild * 1000:.0f} ms; search p50 "
          f"{sorted(timings)[len(timings) // 2] * 1000:.1f} ms, max {max(timings) * 1000:.1f} "
          f"ms; suggestion {suggestion * 1000:.1f} ms")
    assert top[0][0]["title"].startswith("退款到账时间")  # timings are printed, not asserted
