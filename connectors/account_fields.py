"""What an admin enters for a channel account, checked against what its connector declares:
credentials, options, the API base URL; and the schemas the UI builds its forms from."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.base import CredentialField, OptionField
from connectors.registry import CONNECTORS, connector_class


class AccountError(Exception):
    """An account could not be created or changed. `code`: validation, unknown_platform,
    invalid_auth, cannot_connect, unknown, duplicate, other_account, or a connector's own."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def credential_schema(platform: str) -> list[dict[str, Any]]:
    cls = connector_class(platform)
    return [{"name": f.name, "label": f.label, "secret": f.secret, "required": f.required,
             "pattern": f.pattern, "help": f.help, "modes": list(f.modes)}
            for f in cls.credential_fields]


def option_schema(platform: str) -> list[dict[str, Any]]:
    cls = connector_class(platform)
    return [{"name": o.name, "label": o.label, "type": o.type, "default": o.default,
             "choices": list(o.choices), "required": o.required, "help": o.help,
             "minimum": o.minimum, "maximum": o.maximum} for o in cls.option_fields]


def platforms() -> list[dict[str, Any]]:
    return [{"platform": name, "modes": list(cls.modes), "webhook_modes": list(cls.webhook_modes),
             "credentials": credential_schema(name), "options": option_schema(name)}
            for name, cls in sorted(CONNECTORS.items())]


def credentials_of(cls: type[Any], given: Any, mode: str, *,
                 partial: bool = False) -> dict[str, str]:
    if not isinstance(given, dict):
        raise AccountError("validation", "credentials: an object is required",
                           field="credentials")
    fields: tuple[CredentialField, ...] = cls.credential_fields
    known = {f.name for f in fields}
    for name in given:
        if name not in known:
            raise AccountError("validation", f"credentials.{name}: not a credential of this "
                               "platform", field=f"credentials.{name}")
    out: dict[str, str] = {}
    for f in fields:
        value = given.get(f.name)
        if value in (None, ""):
            needed = f.required and (not f.modes or mode in f.modes)
            if needed and not partial:
                raise AccountError("validation", f"credentials.{f.name}: required",
                                   field=f"credentials.{f.name}")
            continue
        if not isinstance(value, str):
            raise AccountError("validation", f"credentials.{f.name}: must be a string",
                               field=f"credentials.{f.name}")
        if f.pattern and not re.fullmatch(f.pattern, value.strip()):
            raise AccountError("invalid_auth", f"credentials.{f.name}: does not look like a "
                               f"{f.label}", field=f"credentials.{f.name}")
        out[f.name] = value.strip()
    return out


def option_value(opt: OptionField, value: Any) -> Any:
    where = f"options.{opt.name}"
    if opt.type == "bool":
        if not isinstance(value, bool):
            raise AccountError("validation", f"{where}: true or false", field=where)
        return value
    if opt.type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                opt.type == "int" and not float(value).is_integer()):
            raise AccountError("validation", f"{where}: a number", field=where)
        value = int(value) if opt.type == "int" else float(value)
        if (opt.minimum is not None and value < opt.minimum) or \
                (opt.maximum is not None and value > opt.maximum):
            raise AccountError("validation", f"{where}: from {opt.minimum} to {opt.maximum}",
                               field=where)
        return value
    if not isinstance(value, str):
        raise AccountError("validation", f"{where}: must be a string", field=where)
    value = value.strip()
    if opt.type == "choice" and value not in opt.choices:
        raise AccountError("validation", f"{where}: one of {', '.join(opt.choices)}",
                           field=where)
    return value


def options_of(cls: type[Any], given: Any, *, current: Mapping[str, Any] | None = None,
             ) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise AccountError("validation", "options: must be an object", field="options")
    fields: dict[str, OptionField] = {o.name: o for o in cls.option_fields}
    for name in given:
        if name not in fields:
            raise AccountError("validation", f"options.{name}: not an option of this platform",
                               field=f"options.{name}")
    out = dict(current or {})
    for name, opt in fields.items():
        if name in given and given[name] not in (None, ""):
            out[name] = option_value(opt, given[name])
        elif name in given:
            out.pop(name, None)
        if opt.required and out.get(name) in (None, ""):
            raise AccountError("validation", f"options.{name}: required",
                               field=f"options.{name}")
    return out


def base_url_of(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise AccountError("validation", "api_base_url: must be an http(s) URL",
                           field="api_base_url")
    return value.rstrip("/") + ("/" if value.endswith("/") else "")
