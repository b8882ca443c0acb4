"""A support mailbox as a channel: IMAP in (a long-lived session), SMTP out.

- `check()` logs in to both servers (IMAP through imapclient in a worker thread, SMTP through
  aiosmtplib) before the account is saved; the platform id is the address, lower-cased, so
  the same mailbox cannot be added twice.
- `inbound()` is an `ImapSession` (connectors/email/imap_session.py); there are no webhooks.
- `ingest()` turns one fetched mail into events: attachments are stored with
  `runtime.store_blob` *before* the message goes to the sink (IMAP keeps the parts, but the
  host serves files from its own store, so the attachment route never needs IMAP), and
  `fetch_attachment` is the base class's (the host serves blobs itself).
- `send()` submits one reply over SMTP and returns its Message-ID, both as the platform id
  and as `Delivery.thread_alias`: a customer's answer that names only our mail joins the
  conversation.

XOAUTH2 (https://developers.google.com/gmail/imap/xoauth2-protocol) is used when the account
has an `oauth2_token` instead of a password. The access token is short-lived: when the
servers refuse it, `ensure_fresh_token()` runs the OAuth 2.0 refresh-token grant (RFC 6749
§6) if the account has `oauth2_refresh_token`, `oauth2_client_id` and `oauth2_token_url`,
and saves the new token with `runtime.save_credentials`; the refused send or session is then
retried by the host (the session restarts; the send is a `TransientError`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from connectors.base import (
    AccountContext,
    AccountInfo,
    AccountRuntime,
    ConnectError,
    ConnectorBase,
    Notice,
)
from connectors.email import imap, normalise, oauth, render, smtp
from connectors.email.imap_session import ImapSession
from connectors.email.settings import CREDENTIAL_FIELDS, OPTION_FIELDS, MailSettings, load
from connectors.email.strings import STRINGS
from inbox.models import (
    AgentIdentity,
    CredentialsRefused,
    Delivery,
    Ignored,
    InboundEvent,
    InboundMessage,
    Measure,
    OutboundMessage,
    PermanentError,
    RenderContext,
    Rendered,
    TransientError,
)

log = logging.getLogger(__name__)


class EmailConnector(ConnectorBase):
    platform: ClassVar[str] = "email"
    modes: ClassVar[tuple[str, ...]] = ("imap",)
    webhook_modes: ClassVar[tuple[str, ...]] = ()
    credential_fields = (*CREDENTIAL_FIELDS, *oauth.CREDENTIAL_FIELDS)
    option_fields = (*OPTION_FIELDS, *oauth.OPTION_FIELDS)
    ack_deadline: ClassVar[float] = 10.0
    app_webhook: ClassVar[bool] = False
    strings: ClassVar[Mapping[str, Mapping[str, str]]] = STRINGS
    normaliser: ClassVar[Any] = normalise
    # OAuth 2.0 token shapes (Google access / refresh tokens, Microsoft's JWTs); a password
    # has no shape and is never logged in the first place.
    secret_patterns: ClassVar[tuple[str, ...]] = (
        r"ya29\.[0-9A-Za-z_\-]{20,}", r"1//[0-9A-Za-z_\-]{20,}",
        r"eyJ[0-9A-Za-z_\-]{10,}\.[0-9A-Za-z_\-]{10,}\.[0-9A-Za-z_\-]{10,}")

    def __init__(self, account: AccountContext, runtime: AccountRuntime) -> None:
        super().__init__(account, runtime)
        self._settings: MailSettings | None = None

    @property
    def settings(self) -> MailSettings:
        if self._settings is None:
            try:
                self._settings = load(self.account)
            except KeyError as exc:
                raise ConnectError("missing_option", f"The option '{exc.args[0]}' is required "
                                                     "for a mailbox.") from exc
        return self._settings

    # ------------------------------------------------------------------------- lifecycle

    async def check(self) -> AccountInfo:
        settings = self.settings
        if not (settings.password or settings.oauth2_token):
            raise ConnectError("invalid_auth", "A mailbox needs a password or an OAuth 2.0 "
                                               "access token.")
        info = await asyncio.to_thread(imap.check, settings)
        info.update(await smtp.check(settings))
        return AccountInfo(platform_id=settings.address.lower(), username=settings.username,
                           display_name=settings.address, extra=info)

    def inbound(self) -> ImapSession:
        return ImapSession(self)

    def notices(self, snapshot: Mapping[str, Any] | None = None) -> list[Notice]:
        """A warning for every unencrypted connection to a host other than this machine, and
        a note when the server has no IMAP IDLE (new mail then waits for the next poll).
        Read from `snapshot` (the account as stored now), else from this connector's own."""
        account = self.account
        if snapshot is not None and isinstance(snapshot.get("options"), Mapping):
            account = dataclasses.replace(account, options=dict(snapshot["options"]))
        try:
            settings = load(account)
        except KeyError:
            return []
        found = []
        for endpoint in (settings.imap, settings.smtp):
            if endpoint.security == "none" and not endpoint.loopback:
                found.append(Notice("notice.insecure_connection", "warning",
                                    {"host": endpoint.host, "port": endpoint.port}))
        info = (snapshot or {}).get("info") or self.account.info or {}
        if info.get("idle") is False:
            found.append(Notice("notice.no_idle", "info",
                                {"seconds": round(settings.poll_seconds)}))
        return found

    # ------------------------------------------------------------------------- inbound

    async def ingest(self, raw: bytes, *, internal_date: datetime | None = None,
                     location: Mapping[str, Any] | None = None) -> list[InboundEvent]:
        """One mail → the events to sink (none for noise), attachments already stored."""
        try:
            result, blobs = normalise.normalise_with_parts(raw, self.account)
        except normalise.UnreadableMail as exc:
            log.warning("account %s: a mail cannot be read and stays on the server (%s): %s",
                        self.account.id, dict(location or {}), exc)
            return []
        if isinstance(result, Ignored):
            log.debug("account %s: mail ignored: %s", self.account.id, result.reason)
            return []
        if not isinstance(result, InboundMessage):
            return [result]
        attachments = []
        for attachment, data in zip(result.attachments, blobs, strict=True):
            blob_id = await self.runtime.store_blob(data, name=attachment.name,
                                                    mime=attachment.mime)
            attachments.append(dataclasses.replace(attachment, blob_id=blob_id))
        raw_doc = dict(result.raw or {})
        if location:
            raw_doc["imap"] = dict(location)
        changes: dict[str, Any] = {"attachments": tuple(attachments), "raw": raw_doc}
        if raw_doc.get("date_missing") and internal_date is not None:
            changes["platform_ts"] = internal_date.astimezone(UTC)
        return [dataclasses.replace(result, **changes)]

    # ------------------------------------------------------------------------- outbound

    def render(self, identity: AgentIdentity, text: str, context: RenderContext) -> Rendered:
        return render.render(self.settings, identity, text, context)

    def measure(self, text: str, context: RenderContext) -> Measure:
        return render.measure(text)

    async def send(self, outbound: OutboundMessage) -> Delivery:
        settings = self.settings
        message, recipients, message_id = render.compose(settings, outbound)
        try:
            await smtp.deliver(settings, message, recipients, envelope_id=message_id)
        except CredentialsRefused:
            if settings.oauth2_token and await self.ensure_fresh_token():
                raise TransientError("The access token had expired; it was refreshed and the "
                                     "reply will be sent again.", code="token_refreshed") from None
            raise
        # the customer's answer may name only our Message-ID (In-Reply-To / References):
        # the conversation learns it as a thread key
        return Delivery(external_id=message_id, platform_ts=datetime.now(UTC),
                        thread_alias=message_id)

    async def ensure_fresh_token(self) -> bool:
        """Refresh the OAuth 2.0 access token if the account can; True when it did."""
        grant = oauth.RefreshGrant.of(self.account)
        if grant is None:
            return False
        try:
            token = await grant.refresh()
        except PermanentError:
            return False
        await self.runtime.save_credentials(token.credentials())
        self.account = dataclasses.replace(self.account, credentials={
            **self.account.credentials, **token.secrets()})
        self._settings = None
        return True
