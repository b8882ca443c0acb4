"""Slack API fixtures replayed through the kit: every send / check outcome maps to the right
result or typed error (what the contract test will check for every platform)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connectors.base import AccountInfo, ConnectError
from inbox.models import (
    CredentialsRefused,
    Delivery,
    PermanentError,
    RateLimited,
    TransientError,
)
from tests.kits.slack import replay

API = Path(__file__).parent / "fixtures" / "slack" / "api"
FIXTURES = sorted(API.glob("*.json"))
EXPECTED: dict[str, type] = {
    "send__ok": Delivery, "send__rate_limited": RateLimited, "send__transient": TransientError,
    "send__permanent": PermanentError, "send__credentials_refused": CredentialsRefused,
}


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"source", "status", "headers", "body"} <= set(data)
    return data


def test_every_send_outcome_and_check_outcome_has_a_fixture() -> None:
    names = {p.stem.split("__")[0] + "__" + p.stem.split("__")[1] for p in FIXTURES}
    assert set(EXPECTED) <= names
    assert {"check__ok", "check__invalid_auth", "check__cannot_connect"} <= names


@pytest.mark.parametrize("path", [p for p in FIXTURES if p.stem.startswith("send__")],
                         ids=lambda p: p.stem)
async def test_send_outcomes(path: Path) -> None:
    outcome = "__".join(path.stem.split("__")[:2])
    expected = EXPECTED[outcome]
    if expected is Delivery:
        result = await replay("send", load(path))
        assert result == Delivery(external_id="C0SUPPORT:1610261800.000200",
                                  platform_ts=result.platform_ts)
        return
    with pytest.raises(expected) as caught:
        await replay("send", load(path))
    if expected is RateLimited:
        assert caught.value.retry_after == (30.0 if path.stem == "send__rate_limited" else 5.0)
    if expected is PermanentError:
        assert not isinstance(caught.value, CredentialsRefused)
        assert caught.value.code == load(path)["body"]["error"]
        assert caught.value.human and caught.value.code not in caught.value.human


async def test_check_outcomes() -> None:
    info = await replay("check", load(API / "check__ok.json"))
    assert isinstance(info, AccountInfo)
    assert info.platform_id == "T0ACME:B0BOT"  # the replay server has no bots.info to give A...
    assert info.extra["scopes"] == sorted(["chat:write", "chat:write.customize", "users:read",
                                           "im:history", "channels:history"])
    for name, code in (("check__invalid_auth", "invalid_auth"),
                       ("check__cannot_connect", "cannot_connect")):
        with pytest.raises(ConnectError) as caught:
            await replay("check", load(API / f"{name}.json"))
        assert caught.value.code == code
