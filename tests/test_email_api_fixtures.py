"""The recorded SMTP answers (tests/fixtures/email/api) through the kit: each outcome maps to
the error class the contract names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import AccountInfo, ConnectError
from inbox.models import CredentialsRefused, Delivery, PermanentError, RateLimited, TransientError
from tests.kits.email import replay

API = Path(__file__).parent / "fixtures" / "email" / "api"
EXPECTED: dict[str, type | tuple[type, str]] = {
    "send__ok": Delivery,
    "send__transient": TransientError,
    "send__permanent": PermanentError,
    "send__credentials_refused": CredentialsRefused,
    "send__rate_limited": RateLimited,
    "send__rate_limited__daily_quota": RateLimited,
    "check__ok": AccountInfo,
    "check__invalid_auth": (ConnectError, "invalid_auth"),
    "check__cannot_connect": (ConnectError, "cannot_connect"),
}


def test_every_fixture_is_covered_and_all_send_outcomes_exist() -> None:
    names = {p.stem for p in API.glob("*.json")}
    assert names == set(EXPECTED)
    for outcome in ("ok", "rate_limited", "transient", "permanent", "credentials_refused"):
        assert f"send__{outcome}" in names
    for path in API.glob("*.json"):
        body = json.loads(path.read_text(encoding="utf-8"))
        assert body["source"] and "smtp" in body


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_replay(name: str) -> None:
    fixture = json.loads((API / f"{name}.json").read_text(encoding="utf-8"))
    operation = name.split("__")[0]
    expected = EXPECTED[name]
    if expected in (Delivery, AccountInfo):
        result = await replay(operation, fixture)
        assert isinstance(result, expected)  # type: ignore[arg-type]
        return
    kind, code = expected if isinstance(expected, tuple) else (expected, None)
    with pytest.raises(kind) as caught:
        await replay(operation, fixture)
    assert type(caught.value) is kind
    if code is not None:
        assert caught.value.code == code  # type: ignore[attr-defined]
    if isinstance(caught.value, PermanentError):
        assert fixture["smtp"]["message"] in caught.value.human
