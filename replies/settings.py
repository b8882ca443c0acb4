"""The settings sections the replies layer owns: the agent's identity and delivery."""

from __future__ import annotations

from pydantic import Field

from inbox.settings import Section


class IdentitySettings(Section):
    brand: str = "Acme"
    signature: str = "— {name} · {brand}"
    greeting_enabled: bool = False
    greeting_default_locale: str = "zh-CN"
    greetings: dict[str, str] = Field(default_factory=dict)


class DeliverySettings(Section):
    max_attempts: int = Field(8, ge=1)
    max_age_seconds: float = Field(86400, gt=0)
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_cap_seconds: float = Field(300.0, gt=0)
    lease_seconds: float = Field(30.0, gt=0)
    workers: int = Field(1, ge=0)
