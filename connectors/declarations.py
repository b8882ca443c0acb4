"""The contract's declarations: what a connector says about its accounts (credentials,
options, what `check()` learned, notices for the admin) and the account it is built from.
Re-exported by connectors/base.py, where the contract is read as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One credential an admin enters; `secret` ones are never shown again, not even masked."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    pattern: str | None = None
    help: str = ""
    modes: tuple[str, ...] = ()  # required only in these modes (empty: every mode)


@dataclass(frozen=True, slots=True)
class OptionField:
    """One non-secret account option (`options` in the account's JSON)."""

    name: str
    label: str
    type: Literal["str", "int", "float", "bool", "choice"] = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What `check()` learned about the account from the platform itself."""

    platform_id: str  # the platform's own id for the account: a second add of it is refused
    username: str | None = None
    display_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kept as the account's `info`


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for the admin on the account page: `key` names a string of the connector's
    `strings` (filled with `values`), `level` is "info", "warning" or "error"."""

    key: str
    level: Literal["info", "warning", "error"] = "info"
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountContext:
    """What a connector is built from: one stored channel account, credentials decrypted."""

    id: str
    platform: str
    name: str
    credentials: Mapping[str, SecretStr]
    api_base_url: str | None = None
    mode: str = "webhook"
    webhook_secret: SecretStr | None = None
    webhook_url: str | None = None
    app_webhook_url: str | None = None
    platform_id: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def secret(self, name: str) -> str:
        """A credential's value, for the library call that needs it (never for logging)."""
        value = self.credentials.get(name)
        return value.get_secret_value() if value is not None else ""


class ConnectError(Exception):
    """`check()` or a lifecycle hook failed; `code` is `invalid_auth`, `cannot_connect` or
    `unknown` (or the connector's own code, with a sentence in its `strings`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
