"""Settings: settings.toml defaults, another file with --config, env vars on top."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from inbox.settings import DatabaseSettings, Section
from measures.settings import CsatSettings, SlaSettings
from replies.settings import DeliverySettings, IdentitySettings
from teams.settings import TeamSettings

__all__ = ["ConfigError", "DatabaseSettings", "DeliverySettings", "IdentitySettings", "Settings",
           "ensure_secret_key", "load_settings"]

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "settings.toml"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = Field(1_048_576, ge=1024)
    processes: int = Field(1, ge=1, le=64)
    # proxies (IPs or CIDRs) whose X-Forwarded-For is believed: see web.auth.client_address
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> list[str]:
        """Each entry an address or a network, normalised ("10.0.0.1" → "10.0.0.1/32"); a typo
        fails at start-up rather than silently trusting nobody (or everybody). From the
        environment: a JSON list or comma-separated, SWITCHBOARD_SERVER__TRUSTED_PROXIES=10.0.0.1,
        10.1.0.0/16."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.lstrip().startswith("[") else \
                    [v for v in value.split(",") if v.strip()]
            except ValueError:
                raise ValueError("must be a JSON list or comma-separated") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of IP addresses or CIDR networks")
        out = []
        for entry in value:
            try:
                out.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return out


class SecuritySettings(Section):
    secret_key: str = Field("", repr=False)
    session_days: int = Field(14, ge=1)
    login_attempts_per_15min: int = Field(10, ge=1)


class UISettings(Section):
    default_locale: str = "en"
    default_timezone: str = "UTC"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_nested_delimiter="__", extra="forbid",
        case_sensitive=False,
    )
    config_file: ClassVar[Path] = DEFAULT_CONFIG

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    ui: UISettings = Field(default_factory=UISettings)
    teams: TeamSettings = Field(default_factory=TeamSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    csat: CsatSettings = Field(default_factory=CsatSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=cls.config_file, deep_merge=True)
        return (init_settings, env_settings, toml)


class ConfigError(Exception):
    """A setting is wrong; the message is one line that names the key."""


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    path = Path(config) if config else DEFAULT_CONFIG
    if config and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    _check_env_keys()
    settings_cls = type("FileSettings", (Settings,), {"config_file": path})
    try:
        settings = settings_cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    except ValueError as exc:  # a TOML syntax error
        raise ConfigError(f"{path}: {exc}") from None
    return settings


def _check_env_keys() -> None:
    known = Settings.model_fields
    for name in os.environ:
        if not name.upper().startswith("SWITCHBOARD_"):
            continue
        rest = name[len("SWITCHBOARD_"):].lower()
        section, _, key = rest.partition("__")
        if section not in known:
            raise ConfigError(f"{name}: unknown section '{section}'")
        model = known[section].annotation
        fields = getattr(model, "model_fields", {})
        if key and key.split("__")[0] not in fields:
            raise ConfigError(f"{name}: unknown key '{section}.{key}'")


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown setting '{key}'"
    value = err.get("input")
    shown = "" if "secret" in key else f" (got {value!r})"
    return f"setting '{key}': {err['msg']}{shown}"


def ensure_secret_key(settings: Settings) -> str:
    """Return the secret key, generating and persisting one under data_dir when unset."""
    if settings.security.secret_key:
        return settings.security.secret_key
    data_dir = settings.database.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    tmp = data_dir / f".secret_key.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # atomic: whole file or nothing, and only the first process wins
    except FileExistsError:
        key = path.read_text().strip()
    finally:
        tmp.unlink()
    return key
