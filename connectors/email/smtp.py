"""SMTP submission through aiosmtplib (MIT): log in, send one reply, map the answer.

The reply codes (RFC 5321 §4.2) and enhanced status codes (RFC 3463) decide the outcome,
never the server's English:

- 535 / 534 / 530, and 5.7.8 / 5.7.9 anywhere → `CredentialsRefused` (the account needs new
  credentials; its replies wait); 454 on AUTH is a temporary failure of the server's check;
- 4xx with an enhanced status 4.7.x (policy: too many messages or connections, greylisting),
  and X.4.5 (congestion, and the daily sending quota Gmail reports as 550 5.4.5) →
  `RateLimited` (SMTP gives no Retry-After: 5 minutes, one hour for a daily quota);
- any other 4xx, a dropped connection, a timeout, an unreachable server → `TransientError`;
- any other 5xx → `PermanentError` with the server's sentence.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)

from connectors.base import ConnectError
from connectors.email.settings import MailSettings
from inbox.models import (
    CredentialsRefused,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)

TIMEOUT = 30.0
POLICY_PAUSE = 300.0
QUOTA_PAUSE = 3600.0
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTH_CODES = {530, 534, 535}
MAX_ENVID = 100  # RFC 3461 §4.4


async def connect(settings: MailSettings, *, timeout: float = TIMEOUT) -> aiosmtplib.SMTP:
    """A connected client, logged in when the account has credentials.

    The EHLO name is the address's domain: no DNS lookup of our own host name (which can
    hang for seconds where DNS is slow) and what submission servers expect anyway."""
    endpoint = settings.smtp
    client = aiosmtplib.SMTP(
        hostname=endpoint.host, port=endpoint.port, use_tls=endpoint.security == "tls",
        start_tls=endpoint.security == "starttls", tls_context=settings.tls_context(),
        timeout=timeout, local_hostname=settings.domain or "localhost")
    await client.connect()
    try:
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        if (settings.oauth2_token or settings.password) and not client.supports_extension(
                "auth"):
            raise SMTPNotSupported("the server offers no login (AUTH) on this connection; "
                                   "it may require TLS")
        if settings.oauth2_token:
            await client.auth_xoauth2(settings.username, settings.oauth2_token)
        elif settings.password:
            await client.login(settings.username, settings.password)
    except BaseException:
        client.close()
        raise
    return client


async def quit_quietly(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except Exception:
        client.close()


def _xtext(value: str) -> str:
    """RFC 3461 §4 xtext: what an ENVID may carry."""
    return "".join(ch if "!" <= ch <= "~" and ch not in "+=" else f"+{ord(ch):02X}"
                   for ch in value)


async def deliver(settings: MailSettings, message: EmailMessage, recipients: Sequence[str],
                  envelope_id: str | None) -> dict[str, Any]:
    """Send; returns what the server said. Raises the typed errors of `classify`."""
    try:
        client = await connect(settings)
    except Exception as exc:
        raise classify(exc) from exc
    try:
        options: list[str] = []
        envid = _xtext(envelope_id or "")
        if envid and len(envid) <= MAX_ENVID and client.supports_extension("dsn"):
            options = [f"ENVID={envid}", "RET=HDRS"]
        refused, answer = await client.send_message(
            message, sender=settings.address, recipients=list(recipients), mail_options=options)
    except Exception as exc:
        raise classify(exc) from exc
    finally:
        await quit_quietly(client)
    return {"answer": answer, "refused": {k: str(v) for k, v in refused.items()}}


async def check(settings: MailSettings) -> dict[str, Any]:
    try:
        client = await connect(settings, timeout=20.0)
    except Exception as exc:
        raise connect_error(exc, settings) from exc
    methods = sorted(client.server_auth_methods)
    await quit_quietly(client)
    return {"smtp_auth": methods}


def _enhanced(message: str) -> tuple[int, int, int] | None:
    match = _ENHANCED.match(message or "")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def _from_reply(code: int, message: str, what: str) -> DeliveryError:
    enhanced = _enhanced(message)
    sentence = f"{what}: {code} {message}".strip()
    if code in _AUTH_CODES or (enhanced is not None and enhanced[0] == 5
                               and enhanced[1:] in ((7, 8), (7, 9))):
        return CredentialsRefused(f"The mail server refused the account's login: {code} "
                                  f"{message}")
    if enhanced is not None and enhanced[1:] == (4, 5):
        return RateLimited(QUOTA_PAUSE if code >= 500 else POLICY_PAUSE,
                           f"The mail server is limiting how much we send: {code} {message}")
    if 400 <= code < 500:
        if what == "login":  # 454 4.7.0 "Temporary authentication failure" (RFC 4954 §6)
            return TransientError(f"The mail server could not check the login just now: "
                                  f"{code} {message}", code="smtp_temporary")
        if enhanced is not None and enhanced[0] == 4 and enhanced[1] == 7:
            return RateLimited(POLICY_PAUSE, f"The mail server asked us to slow down: {code} "
                                             f"{message}")
        return TransientError(f"The mail server is temporarily refusing the reply: {sentence}",
                              code="smtp_temporary")
    codes = {"recipient": "recipient_rejected", "sender": "sender_rejected"}
    return PermanentError(f"The mail server refused the reply ({sentence})",
                          code=codes.get(what, "message_rejected"))


def classify(exc: BaseException) -> DeliveryError:
    """One aiosmtplib exception (or a socket error) as a typed delivery error."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SMTPAuthenticationError):
        return _from_reply(exc.code, exc.message, "login")
    if isinstance(exc, SMTPRecipientsRefused):
        first: SMTPRecipientRefused | None = exc.recipients[0] if exc.recipients else None
        if first is None:
            return PermanentError("The mail server refused every recipient.",
                                  code="recipient_rejected")
        return _from_reply(first.code, first.message, "recipient")
    if isinstance(exc, SMTPSenderRefused):
        return _from_reply(exc.code, exc.message, "sender")
    if isinstance(exc, SMTPDataError):
        return _from_reply(exc.code, exc.message, "message")
    if isinstance(exc, SMTPResponseException):
        return _from_reply(exc.code, exc.message, "server")
    if isinstance(exc, SMTPNotSupported):
        return PermanentError(f"The mail server does not offer what the account needs: {exc}",
                              code="smtp_unsupported")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
            cause, ssl.SSLCertVerificationError):
        return PermanentError("The mail server's certificate cannot be trusted.",
                              code="tls_failed")
    if isinstance(exc, TimeoutError):
        return TransientError(f"The mail server did not answer in time: {exc}", code="timeout")
    if isinstance(exc, SMTPException | OSError):
        return TransientError(f"The mail server cannot be reached: {exc}", code="network")
    return TransientError(f"Sending failed unexpectedly: {type(exc).__name__}: {exc}",
                          code="network")


def connect_error(exc: BaseException, settings: MailSettings) -> ConnectError:
    """A failed SMTP connection or login as `check()` reports it."""
    where = f"{settings.smtp.host}:{settings.smtp.port}"
    if isinstance(exc, SMTPAuthenticationError):
        return ConnectError("invalid_auth", f"The SMTP server {where} refused the username or "
                                            f"the password: {exc.code} {exc.message}")
    if isinstance(exc, SMTPNotSupported):
        return ConnectError("smtp_unsupported", f"The SMTP server {where} does not offer "
                                                f"what the account needs: {exc}")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, ssl.SSLError) or isinstance(cause, ssl.SSLError):
        return ConnectError("tls_failed", f"TLS with the SMTP server {where} failed: "
                                          f"{cause or exc}")
    if isinstance(cause, socket.gaierror):
        return ConnectError("cannot_connect", f"The SMTP server name {settings.smtp.host} "
                                              "cannot be resolved.")
    if isinstance(exc, SMTPException | OSError | TimeoutError):
        return ConnectError("cannot_connect", f"Cannot reach the SMTP server {where}: {exc}")
    return ConnectError("unknown", f"The SMTP server {where} answered unexpectedly: {exc}")
