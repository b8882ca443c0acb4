"""`server.trusted_proxies`: X-Forwarded-For believed only from them, and the login limiter
counting the real client behind a load balancer.

The login routes run on a small app with in-memory stand-ins for the database and the agents
(the limiter needs three collection methods), so this needs neither the embedded database nor
the account machinery.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from web import login
from web.auth import _networks, forwarded_client
from web.pages import ENV_KEY, make_env
from web.settings import ConfigError, ServerSettings, Settings, load_settings

PROXY = "10.0.0.2"
LIMIT = 3

# ---------------------------------------------------------------------- the rule


TRUSTED = _networks(("10.0.0.0/8", "2001:db8:ffff::/48"))


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    # behind our proxy: the address it appended
    (PROXY, ["203.0.113.7"], "203.0.113.7"),
    # a client's own header comes first; the proxy appends the real address on the right
    (PROXY, ["1.1.1.1, 203.0.113.7"], "203.0.113.7"),
    # two of our proxies in a row: skip both
    (PROXY, ["203.0.113.7, 10.9.9.9"], "203.0.113.7"),
    (PROXY, ["203.0.113.7", "10.9.9.9"], "203.0.113.7"),  # two headers are one list
    # not from a proxy of ours: the header is whatever the client wrote
    ("198.51.100.4", ["203.0.113.7"], "198.51.100.4"),
    # nothing forwarded, or only our proxies: the left-most of those we trust
    (PROXY, [], PROXY),
    (PROXY, ["10.3.3.3, 10.4.4.4"], "10.3.3.3"),
    # garbage where an address should be: the last hop we trust, not the garbage
    (PROXY, ["<script>, 10.4.4.4"], "10.4.4.4"),
    (PROXY, ["unknown"], PROXY),
    # ports and IPv6 as proxies write them
    (PROXY, ["203.0.113.7:51234"], "203.0.113.7"),
    ("2001:db8:ffff::1", ["[2001:db8::7]:443"], "2001:db8::7"),
    ("::ffff:10.0.0.2", ["203.0.113.7"], "203.0.113.7"),  # IPv4-mapped peer
])
def test_the_client_is_the_right_most_untrusted_hop(peer: str, forwarded: list[str],
                                                    client: str) -> None:
    assert forwarded_client(peer, forwarded, TRUSTED) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert forwarded_client(PROXY, ["203.0.113.7"], ()) == PROXY


def test_the_setting_takes_addresses_and_networks() -> None:
    server = ServerSettings(trusted_proxies=["10.0.0.1", " 192.168.0.0/16", "fd00::/8",
                                             "10.1.2.3/8"])
    assert server.trusted_proxies == ["10.0.0.1/32", "192.168.0.0/16", "fd00::/8",
                                      "10.0.0.0/8"]
    assert ServerSettings().trusted_proxies == []
    with pytest.raises(ValueError, match="not an IP address"):
        ServerSettings(trusted_proxies=["10.0.0.0/33"])


@pytest.mark.parametrize(("value", "expected"), [
    ('["10.0.0.1", "10.2.0.0/16"]', ["10.0.0.1/32", "10.2.0.0/16"]),
    ("10.0.0.1, 10.2.0.0/16", ["10.0.0.1/32", "10.2.0.0/16"]),
])
def test_the_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                          expected: list[str]) -> None:
    monkeypatch.setenv("SWITCHBOARD_SERVER__TRUSTED_PROXIES", value)
    assert load_settings().server.trusted_proxies == expected
    monkeypatch.setenv("SWITCHBOARD_SERVER__TRUSTED_PROXIES", "10.0.0.300")
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
        load_settings()


# ---------------------------------------------------------------------- the login limiter


@dataclass
class _Attempts:
    """The three calls LoginLimiter makes on `db.login_attempts`."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    async def count_documents(self, flt: dict[str, Any], limit: int = 0) -> int:
        since: datetime = flt["at"]["$gt"]
        return sum(1 for r in self.rows if r["key"] == flt["key"] and r["at"] > since)

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        self.rows.extend(docs)

    async def delete_many(self, flt: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r["key"] != flt["key"]]


class _Agents:
    async def verify_password(self, login_name: str, password: str) -> None:
        return None  # every attempt here is a wrong password


@web.middleware
async def _as_peer(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                   ) -> web.StreamResponse:
    """The test client always connects from 127.0.0.1; X-Test-Peer plays the TCP peer."""
    peer = request.headers.get("X-Test-Peer")
    if peer:
        request = request.clone(remote=peer)
    request["agent"], request["session"], request["via"] = None, None, None
    return await handler(request)


@pytest.fixture
async def app_client(aiohttp_client: Callable[..., Awaitable[TestClient]]) -> TestClient:
    settings = Settings(server={"trusted_proxies": ["10.0.0.0/24"]},
                        security={"secret_key": "k" * 32, "login_attempts_per_15min": LIMIT})
    app = web.Application(middlewares=[_as_peer])
    app["services"] = SimpleNamespace(settings=settings, db=SimpleNamespace(
        login_attempts=_Attempts()), agents=_Agents())
    app[ENV_KEY] = make_env()
    login.setup(app)
    return await aiohttp_client(app)


async def _try(client: TestClient, login_name: str, **headers: str) -> int:
    page = await client.get("/login", headers=headers)
    match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert match
    resp = await client.post("/login", headers=headers, allow_redirects=False, data={
        "login": login_name, "password": "wrong password", "csrf": match.group(1)})
    return resp.status


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
        app_client: TestClient) -> None:
    alice = {"X-Test-Peer": PROXY, "X-Forwarded-For": "203.0.113.10"}
    bob = {"X-Test-Peer": PROXY, "X-Forwarded-For": "203.0.113.20"}
    # a different login each time, so only the address can be what blocks
    assert [await _try(app_client, f"a{i}", **alice) for i in range(LIMIT)] == [401] * LIMIT
    assert await _try(app_client, "a-next", **alice) == 429
    assert await _try(app_client, "b0", **bob) == 401  # the proxy's address is not shared


async def test_an_untrusted_peer_cannot_reset_its_limit_with_a_made_up_header(
        app_client: TestClient) -> None:
    statuses = [await _try(app_client, f"m{i}", **{
        "X-Test-Peer": "198.51.100.7", "X-Forwarded-For": f"192.0.2.{i}"})
        for i in range(LIMIT + 2)]
    assert statuses == [401] * LIMIT + [429, 429]
    # and what a client writes before the proxy's entry is ignored as well
    spoof = {"X-Test-Peer": PROXY, "X-Forwarded-For": "192.0.2.99, 203.0.113.30"}
    assert [await _try(app_client, f"s{i}", **spoof) for i in range(LIMIT)] == [401] * LIMIT
    spoof["X-Forwarded-For"] = "192.0.2.100, 203.0.113.30"
    assert await _try(app_client, "s-next", **spoof) == 429
