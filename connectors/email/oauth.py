"""The OAuth 2.0 refresh-token grant (RFC 6749 §6), for mailboxes that log in with XOAUTH2.

Gmail and Microsoft 365 hand out access tokens valid for about an hour. Obtaining the first
token (the consent screen) is outside Switchboard; an admin who pastes a refresh token, the
client id (and secret) and the provider's token endpoint lets the connector renew the access
token itself when a server refuses it. Anything else (device flow, PKCE) is out of scope.

Provider token endpoints: https://oauth2.googleapis.com/token (Google),
https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token (Microsoft).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from pydantic import SecretStr

from connectors.base import AccountContext, CredentialField, OptionField
from inbox.models import PermanentError, TransientError

CREDENTIAL_FIELDS: tuple[CredentialField, ...] = (
    CredentialField("oauth2_refresh_token", "OAuth 2.0 refresh token", required=False),
    CredentialField("oauth2_client_secret", "OAuth 2.0 client secret", required=False),
)
OPTION_FIELDS: tuple[OptionField, ...] = (
    OptionField("oauth2_token_url", "OAuth 2.0 token endpoint"),
    OptionField("oauth2_client_id", "OAuth 2.0 client id"),
)


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    refresh_token: str | None

    def credentials(self) -> dict[str, str]:
        saved = {"oauth2_token": self.access_token}
        if self.refresh_token:
            saved["oauth2_refresh_token"] = self.refresh_token
        return saved

    def secrets(self) -> dict[str, SecretStr]:
        return {k: SecretStr(v) for k, v in self.credentials().items()}


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    token_url: str
    client_id: str
    client_secret: str
    refresh_token: str

    @classmethod
    def of(cls, account: AccountContext) -> RefreshGrant | None:
        url = str(account.options.get("oauth2_token_url") or "")
        client_id = str(account.options.get("oauth2_client_id") or "")
        refresh = account.secret("oauth2_refresh_token")
        if not (url and client_id and refresh):
            return None
        return cls(url, client_id, account.secret("oauth2_client_secret"), refresh)

    async def refresh(self, timeout: float = 20.0) -> Token:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token,
                "client_id": self.client_id}
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
                    s.post(self.token_url, data=form) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientError(f"The OAuth token endpoint cannot be reached: {exc}",
                                 code="network") from exc
        if status >= 500:
            raise TransientError(f"The OAuth token endpoint failed ({status}).",
                                 code="network")
        if not isinstance(body, dict) or status >= 400 or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise PermanentError(f"The OAuth token endpoint refused the refresh token "
                                 f"({status} {error or 'no access_token'}).",
                                 code="oauth_refresh_refused")
        return Token(str(body["access_token"]), str(body.get("refresh_token") or "") or None)
