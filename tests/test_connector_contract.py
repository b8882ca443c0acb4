"""The connector contract, checked for every connector in the registry.

For each platform: its declarations are complete and its strings exist in every UI language; its
dispatch table decides which inbound fixtures must exist (each handler has a fixture with a
golden output), plus an own-echo fixture and an unknown-event fixture; and every recorded API
answer under `tests/fixtures/<platform>/api/` is replayed through the connector (the kit in
`tests/kits/<platform>.py`), with the five send outcomes required.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from connectors.base import AccountInfo, ConnectError, Connector, ConnectorBase
from connectors.registry import CONNECTORS
from inbox.models import (
    CredentialsRefused,
    Delivery,
    DeliveryError,
    Ignored,
    PermanentError,
    RateLimited,
    TransientError,
)
from tests.helpers_normalise import FIXTURES, Fixture, as_json, inbound_fixtures

PLATFORMS = sorted(CONNECTORS)
# generic delivery errors (rate limited, timeout, network) have the host's sentences
HOST_STRINGS = json.loads((Path(__file__).parent.parent / "web" / "locales" / "en.json")
                          .read_text(encoding="utf-8"))
SEND_OUTCOMES = ("ok", "rate_limited", "transient", "permanent", "credentials_refused")
UI_LOCALES = ("en", "zh-CN")
API_NAME = re.compile(r"^(?P<operation>[a-z_]+?)__(?P<outcome>[a-z_]+?)(?:__(?P<scenario>.+))?$")


def kit(platform: str) -> ModuleType:
    return importlib.import_module(f"tests.kits.{platform}")


def golden_account(platform: str) -> Any:
    module = kit(platform)
    return getattr(module, "GOLDEN_ACCOUNT", None) or module.account(None)


def api_fixtures(platform: str) -> list[Path]:
    return sorted((FIXTURES / platform / "api").glob("*.json"))


def outcome_of(result: Any) -> str:
    """What a connector operation ended in, in the fixtures' words."""
    if isinstance(result, CredentialsRefused):
        return "credentials_refused"
    if isinstance(result, RateLimited):
        return "rate_limited"
    if isinstance(result, PermanentError):
        return "permanent"
    if isinstance(result, TransientError):
        return "transient"
    if isinstance(result, ConnectError):
        return result.code
    if isinstance(result, DeliveryError):
        return result.code
    if isinstance(result, BaseException):
        return f"unexpected {type(result).__name__}"
    return "ok"


# ------------------------------------------------------------------------------ declarations


@pytest.mark.parametrize("platform", PLATFORMS)
def test_declarations_are_complete(platform: str) -> None:
    cls = CONNECTORS[platform]
    assert cls.platform == platform
    assert issubclass(cls, ConnectorBase)
    assert cls.modes and set(cls.webhook_modes) <= set(cls.modes)
    assert cls.ack_deadline > 0
    assert cls.credential_fields, "a connector declares the credentials an admin enters"
    names = [f.name for f in cls.credential_fields] + [o.name for o in cls.option_fields]
    assert len(names) == len(set(names))
    for f in cls.credential_fields:
        assert set(f.modes) <= set(cls.modes)
    for method in ("check", "send", "handle_webhook", "fetch_attachment", "on_create",
                   "on_delete", "close", "enrich_author"):
        assert inspect.iscoroutinefunction(getattr(cls, method)), method
    for method in ("render", "measure", "inbound", "notices", "send_scope"):
        assert callable(getattr(cls, method)) and not inspect.iscoroutinefunction(
            getattr(cls, method)), method
    assert inspect.iscoroutinefunction(cls.route_app_webhook)
    for attr in ("account", "runtime"):
        assert attr in Connector.__annotations__


@pytest.mark.parametrize("platform", PLATFORMS)
def test_strings_exist_in_every_ui_language(platform: str) -> None:
    cls = CONNECTORS[platform]
    strings = cls.strings
    assert set(UI_LOCALES) <= set(strings)
    keys = {locale: set(strings[locale]) for locale in UI_LOCALES}
    assert keys["en"] == keys["zh-CN"], keys["en"] ^ keys["zh-CN"]
    needed = {"name"} | {f"cred.{f.name}" for f in cls.credential_fields} | {
        f"option.{o.name}" for o in cls.option_fields} | {f"mode.{m}" for m in cls.modes}
    assert needed <= keys["en"], needed - keys["en"]
    for locale in UI_LOCALES:
        for key, text in strings[locale].items():
            assert text.strip(), f"{platform} {locale} {key} is empty"
            assert set(re.findall(r"{(\w+)}", text)) == set(
                re.findall(r"{(\w+)}", strings["en"][key])), f"{locale} {key} placeholders"


# ------------------------------------------------------------------------------ inbound fixtures


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_handler_has_a_fixture_with_a_golden_output(platform: str) -> None:
    normaliser = CONNECTORS[platform].normaliser
    fixtures = inbound_fixtures(platform)
    covered: dict[str | None, list[str]] = {}
    for fixture in fixtures:
        covered.setdefault(normaliser.dispatch_key(fixture.payload), []).append(str(fixture))
        assert fixture.expected_path.exists(), f"{fixture} has no golden output"
    missing = set(normaliser.HANDLERS) - set(covered)
    assert not missing, f"{platform}: no fixture for {sorted(missing)}"
    assert None in covered, f"{platform}: no unknown-event fixture (dispatch_key → None)"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_own_echo_and_unknown_events_are_ignored(platform: str) -> None:
    normaliser = CONNECTORS[platform].normaliser
    account = golden_account(platform)
    fixtures = inbound_fixtures(platform)
    echoes = [f for f in fixtures if "own_echo" in str(f)]
    assert echoes, f"{platform}: no own-echo fixture (a name containing own_echo)"
    unknown = [f for f in fixtures if normaliser.dispatch_key(f.payload) is None]
    for fixture in echoes + unknown:
        result = normaliser.normalise(fixture.payload, account)
        assert isinstance(result, Ignored), f"{fixture}: {result}"


def _every_inbound() -> list[tuple[str, Fixture]]:
    return [(p, f) for p in PLATFORMS for f in inbound_fixtures(p)]


@pytest.mark.parametrize(("platform", "fixture"), _every_inbound(),
                         ids=[f"{p}:{f}" for p, f in _every_inbound()])
def test_golden_outputs(platform: str, fixture: Fixture) -> None:
    result = CONNECTORS[platform].normaliser.normalise(fixture.payload, golden_account(platform))
    expected = json.loads(fixture.expected_path.read_text(encoding="utf-8"))
    assert as_json(result) == expected


# ------------------------------------------------------------------------------ API answers


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_send_outcome_has_a_fixture(platform: str) -> None:
    outcomes = set()
    for path in api_fixtures(platform):
        found = API_NAME.match(path.stem)
        assert found, f"{path.name}: not <operation>__<outcome>[__<scenario>].json"
        if found["operation"] == "send":
            outcomes.add(found["outcome"])
    assert set(SEND_OUTCOMES) <= outcomes, set(SEND_OUTCOMES) - outcomes


def _every_api() -> list[tuple[str, Path]]:
    return [(p, path) for p in PLATFORMS for path in api_fixtures(p)]


@pytest.mark.parametrize(("platform", "path"), _every_api(),
                         ids=[f"{p}:{path.stem}" for p, path in _every_api()])
async def test_every_api_fixture_replays_to_its_outcome(platform: str, path: Path) -> None:
    found = API_NAME.match(path.stem)
    assert found
    fixture = json.loads(path.read_bytes())  # noqa: ASYNC240 - a small local file
    assert fixture.get("source"), f"{path.name} names no source"
    try:
        result: Any = await kit(platform).replay(found["operation"], fixture)
    except (DeliveryError, ConnectError) as exc:
        result = exc
    assert outcome_of(result) == found["outcome"], f"{path.name}: {result!r}"
    if found["operation"] == "send" and found["outcome"] == "ok":
        assert isinstance(result, Delivery) and result.external_id
    if found["operation"] == "check" and found["outcome"] == "ok":
        assert isinstance(result, AccountInfo) and result.platform_id
    if isinstance(result, RateLimited):
        assert result.retry_after > 0
    if isinstance(result, DeliveryError):
        assert result.human and result.code
        assert f"error.{result.code}" in CONNECTORS[platform].strings["en"] or \
            f"delivery.error.{result.code}" in HOST_STRINGS, \
            f"{platform}: no sentence for error code {result.code!r} in its strings"
