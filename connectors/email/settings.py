"""A mailbox account's settings: what the admin entered, with the defaults filled in.

Ports default by `security` as the IANA registrations and RFC 8314 have them: IMAP 993
(implicit TLS) / 143 (STARTTLS or none), SMTP submission 465 (implicit TLS) / 587
(STARTTLS) / 25 (none). `security = "none"` exists for a mail server on the same host or a
test server; `notices()` warns when it is chosen for any other host.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from typing import Any, Literal

from connectors.base import AccountContext, CredentialField, OptionField

Security = Literal["tls", "starttls", "none"]
SECURITIES: tuple[str, ...] = ("tls", "starttls", "none")
IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}
SMTP_PORTS = {"tls": 465, "starttls": 587, "none": 25}
DEFAULT_TEMPLATE = "{name} · {brand}"

CREDENTIAL_FIELDS: tuple[CredentialField, ...] = (
    CredentialField("username", "Username", secret=False, required=False),
    CredentialField("password", "Password", required=False),
    CredentialField("oauth2_token", "OAuth 2.0 access token", required=False),
)

OPTION_FIELDS: tuple[OptionField, ...] = (
    OptionField("address", "Address", required=True,
                help="The support address customers write to; replies are sent from it."),
    OptionField("display_name_template", "Sender name", default=DEFAULT_TEMPLATE),
    OptionField("imap_host", "IMAP server", required=True),
    OptionField("imap_port", "IMAP port", type="int", minimum=1, maximum=65535),
    OptionField("smtp_host", "SMTP server", required=True),
    OptionField("smtp_port", "SMTP port", type="int", minimum=1, maximum=65535),
    OptionField("security", "Security", type="choice", default="tls", choices=SECURITIES),
    OptionField("folder", "Folder", default="INBOX"),
    OptionField("ca_file", "CA certificate file"),
    OptionField("poll_seconds", "Poll interval", type="float", default=60, minimum=5,
                maximum=3600),
    OptionField("backfill_days", "Import history", type="int", default=7, minimum=0,
                maximum=365),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    security: Security

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


@dataclass(frozen=True, slots=True)
class MailSettings:
    address: str
    username: str
    password: str
    oauth2_token: str
    imap: Endpoint
    smtp: Endpoint
    folder: str
    template: str
    ca_file: str | None
    poll_seconds: float
    backfill_days: int

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name verified, against the system CAs or `ca_file` (a
        self-hosted server signed by a private CA)."""
        return ssl.create_default_context(cafile=self.ca_file or None)


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def load(account: AccountContext) -> MailSettings:
    """Settings from the stored account; missing required options raise KeyError(name)."""
    options = account.options

    def required(name: str) -> str:
        value = str(options.get(name) or "").strip()
        if not value:
            raise KeyError(name)
        return value

    security = str(options.get("security") or "tls").lower()
    if security not in SECURITIES:
        security = "tls"
    sec: Security = security  # type: ignore[assignment]
    address = required("address")
    return MailSettings(
        address=address,
        username=account.secret("username") or address,
        password=account.secret("password"),
        oauth2_token=account.secret("oauth2_token"),
        imap=Endpoint(required("imap_host"), _int(options.get("imap_port"), IMAP_PORTS[sec]),
                      sec),
        smtp=Endpoint(required("smtp_host"), _int(options.get("smtp_port"), SMTP_PORTS[sec]),
                      sec),
        folder=str(options.get("folder") or "INBOX"),
        template=str(options.get("display_name_template") or DEFAULT_TEMPLATE),
        ca_file=str(options.get("ca_file") or "") or None,
        poll_seconds=max(0.2, _float(options.get("poll_seconds"), 60.0)),
        backfill_days=max(0, _int(options.get("backfill_days"), 7)),
    )
