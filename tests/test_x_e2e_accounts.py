"""X accounts through the real host: POST /api/accounts calls users/me through tweepy; refused
keys, an unreachable API, the spend notice, usage persisted in the account document."""

from __future__ import annotations

from tests.kits.x import OUR_HANDLE, OUR_ID, XLive, x_live_fixture  # noqa: F401
from tests.live import free_port


async def test_creating_an_account_stores_its_x_user_id_and_handle(x_live: XLive) -> None:
    account = await x_live.add_account()
    assert (account["platform_id"], account["username"]) == (OUR_ID, OUR_HANDLE)
    assert account["display_name"] == f"{OUR_HANDLE} (brand)" and account["status"] == "active"
    me = [c for c in x_live.sandbox.calls if c["path"] == "/2/users/me"]
    assert me and me[0]["auth"] == "OAuth" and me[0]["status"] == 200
    doc = await x_live.account_doc(account["id"])
    assert doc["platform_id"] == OUR_ID and doc["info"]["username"] == OUR_HANDLE
    assert "consumer_secret" not in str(account)
    (notice,) = account["notices"]
    assert (notice["key"], notice["level"], notice["text"]) == (
        "notice.spend", "info", "Estimated X API spend this month: $0.00 (0 reads, 0 replies).")


async def test_the_same_x_account_cannot_be_added_twice(x_live: XLive) -> None:
    await x_live.add_account()
    again = await x_live.api("POST", "/api/accounts", expect=409,
                             json=x_live.account_body(name="again"))
    assert again["error"]["code"] == "duplicate"


async def test_keys_x_refuses_are_422_invalid_auth(x_live: XLive) -> None:
    body = x_live.account_body(2)  # an app the sandbox never issued
    refused = await x_live.api("POST", "/api/accounts", expect=422, json=body)
    assert refused["error"]["code"] == "invalid_auth"
    assert await x_live.db.accounts.count_documents({}) == 0


async def test_an_unreachable_api_is_502(x_live: XLive) -> None:
    body = x_live.account_body(base_url=f"http://127.0.0.1:{free_port()}")
    refused = await x_live.api("POST", "/api/accounts", expect=502, json=body)
    assert refused["error"]["code"] == "cannot_connect"
    assert await x_live.db.accounts.count_documents({}) == 0


async def test_the_poll_interval_is_validated_against_the_declared_option(x_live: XLive,
                                                                          ) -> None:
    body = x_live.account_body(options={"poll_interval_s": 0})
    refused = await x_live.api("POST", "/api/accounts", expect=400, json=body)
    assert refused["error"]["field"] == "options.poll_interval_s"
