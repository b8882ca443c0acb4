"""IMAP connections through imapclient (BSD-3-Clause), blocking: run them in a worker thread.

imapclient wraps the standard library's imaplib; one `IMAPClient` belongs to one thread at a
time (the session uses a single-thread executor per account). Login failures are told apart
by the RFC 5530 response code the server puts in its NO answer ([AUTHENTICATIONFAILED],
[UNAVAILABLE]…), not by its English text.
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from connectors.base import ConnectError
from connectors.email.settings import MailSettings

CONNECT_TIMEOUT = 20.0
# Temporary refusals (RFC 5530 §3): the credentials may be fine.
_TEMPORARY_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


def connect(settings: MailSettings, *, timeout: float = CONNECT_TIMEOUT) -> IMAPClient:
    """A logged-in client, timestamps kept timezone-aware."""
    endpoint = settings.imap
    context = settings.tls_context()
    client = IMAPClient(endpoint.host, port=endpoint.port, ssl=endpoint.security == "tls",
                        ssl_context=context, timeout=timeout, use_uid=True)
    client.normalise_times = False
    try:
        if endpoint.security == "starttls":
            client.starttls(context)
        if settings.oauth2_token:
            client.oauth2_login(settings.username, settings.oauth2_token)
        else:
            client.login(settings.username, settings.password)
    except BaseException:
        close(client)
        raise
    return client


def close(client: IMAPClient | None) -> None:
    """Log out, or drop the socket if the server no longer answers."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            return


def is_temporary(exc: LoginError) -> bool:
    text = str(exc).upper()
    return any(code in text for code in _TEMPORARY_CODES)


def connect_error(exc: BaseException, settings: MailSettings) -> ConnectError:
    """A failed IMAP connection or login as `check()` reports it."""
    where = f"{settings.imap.host}:{settings.imap.port}"
    if isinstance(exc, LoginError) and not is_temporary(exc):
        return ConnectError("invalid_auth", f"The IMAP server {where} refused the username or "
                                            f"the password: {_server_text(exc)}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectError("tls_failed", f"The IMAP server {where} presented a certificate "
                                          f"that cannot be trusted: {exc.verify_message}.")
    if isinstance(exc, ssl.SSLError):
        return ConnectError("tls_failed", f"TLS with the IMAP server {where} failed: {exc}.")
    if isinstance(exc, socket.gaierror):
        return ConnectError("cannot_connect", f"The IMAP server name {settings.imap.host} "
                                              "cannot be resolved.")
    if isinstance(exc, OSError | imaplib.IMAP4.abort | IMAPClientError | LoginError):
        return ConnectError("cannot_connect", f"Cannot reach the IMAP server {where}: "
                                              f"{_server_text(exc)}")
    return ConnectError("unknown", f"The IMAP server {where} answered unexpectedly: {exc}")


def _server_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
        text = text[2:-1]
    return text[:300]


def check(settings: MailSettings) -> dict[str, Any]:
    """Log in and open the folder; what the server offers, for the account's info."""
    try:
        client = connect(settings)
    except Exception as exc:
        raise connect_error(exc, settings) from exc
    try:
        capabilities = sorted(c.decode("ascii", "replace") for c in client.capabilities())
        try:
            client.select_folder(settings.folder, readonly=True)
        except IMAPClientError as exc:
            raise ConnectError(
                "folder_not_found", f"The IMAP folder '{settings.folder}' cannot be opened: "
                                    f"{_server_text(exc)}") from exc
        return {"imap_capabilities": capabilities, "idle": "IDLE" in capabilities}
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise connect_error(exc, settings) from exc
    finally:
        close(client)
