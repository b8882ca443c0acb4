"""Settings: file defaults, env overrides, one-line errors, a secret key made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from web.settings import ConfigError, ensure_secret_key, load_settings


def test_defaults_come_from_settings_toml() -> None:
    s = load_settings()
    assert s.server.port == 8080 and s.database.uri == ""
    assert s.identity.signature == "— {name} · {brand}"
    assert s.identity.greetings["zh-CN"] == "您好，这里是{brand}客服部，我是{name}。"
    assert s.identity.greeting_enabled is False


def test_env_overrides_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_SERVER__PORT", "9090")
    monkeypatch.setenv("SWITCHBOARD_IDENTITY__BRAND", "极客")
    s = load_settings()
    assert s.server.port == 9090 and s.identity.brand == "极客"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SWITCHBOARD_SERVER__PORT", "abc", "setting 'server.port'"),
    ("SWITCHBOARD_NOPE__X", "1", "unknown section 'nope'"),
    ("SWITCHBOARD_DATABASE__URL", "1", "unknown key 'database.url'"),
    ("SWITCHBOARD_SERVER__PUBLIC_URL", "example.com", "setting 'server.public_url'"),
])
def test_bad_values_name_the_key(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                 message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_a_secret_is_never_echoed_in_an_error(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('[security]\nsecret_key = 12345\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert "12345" not in str(info.value)


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    s = load_settings(database={"data_dir": tmp_path / "d"})
    first = ensure_secret_key(s)
    assert len(first) >= 32 and ensure_secret_key(s) == first
    path = tmp_path / "d" / "secret_key"
    assert path.read_text() == first and (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["secret_key"]
