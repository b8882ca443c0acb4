"""check(): log in to IMAP (Dovecot) and SMTP (aiosmtpd) before the account is saved."""

from __future__ import annotations

import pytest

from connectors.base import ConnectError, Notice
from connectors.email.connector import EmailConnector
from connectors.email.sandbox_smtp import SmtpSandbox
from tests.email_runtime import RecordingRuntime, email_account
from tests.email_servers import PASSWORD, Dovecot, account_options, dovecot, free_port, smtp_server

__all__ = ["dovecot", "smtp_server"]


def build(options: dict[str, object], *, username: str, password: str | None = PASSWORD,
          **creds: str) -> EmailConnector:
    account = email_account(options, username=username, password=password, **creds)
    return EmailConnector(account, RecordingRuntime(account))


async def test_ok(dovecot: Dovecot, smtp_server: SmtpSandbox) -> None:
    user = dovecot.new_user()
    smtp_server.username = user
    conn = build(account_options(dovecot, smtp_server, user, address="Support@Acme.example"),
                 username=user)
    info = await conn.check()
    assert info.platform_id == "support@acme.example"
    assert info.username == user and info.display_name == "Support@Acme.example"
    assert info.extra["idle"] is True and "IDLE" in info.extra["imap_capabilities"]
    assert "plain" in info.extra["smtp_auth"]
    assert smtp_server.logins == [("PLAIN", user)]


async def test_wrong_imap_password(dovecot: Dovecot, smtp_server: SmtpSandbox) -> None:
    conn = build(account_options(dovecot, smtp_server, "x"), username=dovecot.new_user(),
                 password="wrong")
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "invalid_auth"
    assert "IMAP" in caught.value.message and "AUTHENTICATIONFAILED" in caught.value.message
    assert "wrong" not in caught.value.message


async def test_wrong_smtp_password(dovecot: Dovecot, smtp_server: SmtpSandbox) -> None:
    user = dovecot.new_user()
    smtp_server.password = "something else"
    conn = build(account_options(dovecot, smtp_server, user), username=user)
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "invalid_auth" and "SMTP" in caught.value.message
    assert "535" in caught.value.message


async def test_unreachable_imap(smtp_server: SmtpSandbox) -> None:
    conn = build(account_options(None, smtp_server, "x"), username="support@acme.example")
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "cannot_connect" and "IMAP" in caught.value.message


async def test_unreachable_smtp(dovecot: Dovecot) -> None:
    conn = build(account_options(dovecot, None, "x", smtp_port=free_port()),
                 username=dovecot.new_user())
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "cannot_connect" and "SMTP" in caught.value.message


async def test_unknown_folder(dovecot: Dovecot, smtp_server: SmtpSandbox) -> None:
    conn = build(account_options(dovecot, smtp_server, "x", folder="Nowhere"),
                 username=dovecot.new_user())
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "folder_not_found"


async def test_no_password_and_no_token_is_refused_before_connecting() -> None:
    conn = build(account_options(None, None, "x"), username="a@acme.example", password=None)
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "invalid_auth"


async def test_missing_option() -> None:
    conn = build({"address": "support@acme.example"}, username="a@acme.example")
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "missing_option" and "imap_host" in caught.value.message


def test_insecure_notice_only_for_other_hosts() -> None:
    local = build(account_options(None, None, "x"), username="a")
    assert local.notices() == []
    remote = build({**account_options(None, None, "x"), "imap_host": "mail.acme.example",
                    "imap_port": None}, username="a")
    assert remote.notices() == [Notice("notice.insecure_connection", "warning",
                                       {"host": "mail.acme.example", "port": 143})]
    tls = build({**account_options(None, None, "x"), "imap_host": "mail.acme.example",
                 "smtp_host": "mail.acme.example", "security": "tls", "imap_port": None,
                 "smtp_port": None}, username="a")
    assert tls.notices() == []
    assert (tls.settings.imap.port, tls.settings.smtp.port) == (993, 465)


def test_strings_have_the_same_keys_and_every_code() -> None:
    strings = EmailConnector.strings
    assert set(strings["en"]) == set(strings["zh-CN"])
    for code in ("invalid_auth", "cannot_connect", "unknown", "tls_failed", "folder_not_found",
                 "missing_option", "smtp_unsupported", "recipient_rejected", "sender_rejected",
                 "message_rejected", "credentials_refused", "rate_limited", "no_recipient",
                 "invalid_address", "oauth_refresh_refused", "bounced", "smtp_temporary",
                 "token_refreshed"):
        assert f"error.{code}" in strings["en"]
    for field in (*EmailConnector.credential_fields, *EmailConnector.option_fields):
        kind = "cred" if field in EmailConnector.credential_fields else "option"
        assert f"{kind}.{field.name}" in strings["en"]
        assert f"{kind}.{field.name}.help" in strings["en"]
    assert "notice.insecure_connection" in strings["en"] and "mode.imap" in strings["en"]


def test_notices_read_the_stored_account() -> None:
    """The host passes the account as stored now; a server without IDLE is a note."""
    conn = build(account_options(None, None, "x"), username="a")
    stored = {"options": {**account_options(None, None, "x"), "smtp_host": "smtp.acme.example",
                          "smtp_port": None, "poll_seconds": 30.0},
              "info": {"idle": False}, "mode": "imap", "status": "active", "usage": {},
              "inbound_note": None}
    assert conn.notices(stored) == [
        Notice("notice.insecure_connection", "warning", {"host": "smtp.acme.example",
                                                         "port": 25}),
        Notice("notice.no_idle", "info", {"seconds": 30})]
    assert conn.notices({**stored, "options": account_options(None, None, "x"),
                         "info": {"idle": True}}) == []
