"""Presence says what an agent did last: the page's "viewing" on load and its "typing" a moment
later go one after the other, so a slow first request cannot land after the second and leave
the other agents reading "has this conversation open" while someone is replying."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import expect

from tests.ui_support import Live, browser_test


@browser_test
async def test_typing_is_not_overtaken_by_a_slow_viewing(ui_live: Live) -> None:
    admin = await ui_live.person("boss", role="admin", display_name="李经理")
    helper = await ui_live.person("li", display_name="李助理")
    account = await ui_live.telegram_account(admin)
    conv = await ui_live.customer_says(account, "在吗？")
    page = await ui_live.page(admin)
    await page.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(page.locator("#side-team")).to_be_visible()

    other = await ui_live.page(helper)
    sent: list[str] = []

    async def slow_first(route: Any) -> None:
        sent.append(route.request.post_data or "")
        if len(sent) == 1:
            await asyncio.sleep(1.0)  # the "viewing" of the page load, held up on the way
        await route.continue_()

    await other.route("**/presence", slow_first)
    await other.goto(f"{ui_live.url}/conversations/{conv['id']}")
    await expect(other.locator("#reply-text")).to_be_visible()
    await other.locator("#reply-text").press_sequentially("您好")
    await asyncio.sleep(2.0)  # both requests are through
    assert [s for s in sent if "typing" in s or "viewing" in s][:2] == [
        '{"state":"viewing"}', '{"state":"typing"}']
    await expect(page.locator("#presence")).to_have_text("李助理 is replying", timeout=3000)
    assert page.js_errors == [] and other.js_errors == []
