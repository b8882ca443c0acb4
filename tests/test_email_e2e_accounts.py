"""Mailbox accounts through the real host: POST /api/accounts logs in to Dovecot (IMAP) and
aiosmtpd (SMTP) first; refused logins are 422 and unreachable servers 502, in words; the
options are validated against the connector's declared fields; an unencrypted connection to
another machine is a warning notice in the account's JSON."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from connectors.email.dovecot import free_port
from connectors.email.sandbox_imap import ImapSandbox
from connectors.email.sandbox_smtp import SmtpSandbox
from tests.email_servers import dovecot
from tests.kits.email import EmailLive, email_live
from tests.live import wait_for

__all__ = ["dovecot", "email_live"]


async def test_creating_a_mailbox_logs_in_to_both_servers(email_live: EmailLive) -> None:
    account = await email_live.add_account()
    assert (account["platform"], account["mode"], account["status"]) == ("email", "imap",
                                                                          "active")
    assert account["platform_id"] == email_live.user.lower()
    assert account["username"] == email_live.user and account["webhook_url"] is None
    assert account["info"]["idle"] is True and "IDLE" in account["info"]["imap_capabilities"]
    assert "plain" in account["info"]["smtp_auth"]
    assert account["notices"] == []  # loopback servers: no warning
    assert ("PLAIN", email_live.user) in email_live.smtp.logins
    assert email_live.dovecot.password not in str(account)
    doc = await email_live.account_doc(account["id"])
    assert email_live.dovecot.password not in str(doc["credentials"])  # sealed
    runner = email_live.live.services.hosting.runners[account["id"]]
    assert runner.stats.owner and runner.stats.sessions == 1  # the IMAP session runs


async def test_the_same_mailbox_cannot_be_added_twice(email_live: EmailLive) -> None:
    await email_live.add_account()
    _, again = await email_live.api("POST", "/api/accounts", expect=409,
                                    json=email_live.account_body(name="again"))
    assert again["error"]["code"] == "duplicate"


async def test_a_refused_login_is_422_in_words(email_live: EmailLive) -> None:
    _, imap = await email_live.api("POST", "/api/accounts", expect=422,
                                   json=email_live.account_body(password="not-the-password"))
    assert imap["error"]["code"] == "invalid_auth"
    assert f"IMAP server 127.0.0.1:{email_live.dovecot.port} refused" in imap["error"]["message"]
    assert "not-the-password" not in str(imap)
    email_live.smtp.password = "the SMTP server's own"
    _, smtp = await email_live.api("POST", "/api/accounts", expect=422,
                                   json=email_live.account_body())
    assert smtp["error"]["code"] == "invalid_auth"
    assert "SMTP server" in smtp["error"]["message"] and "535" in smtp["error"]["message"]
    assert await email_live.db.accounts.count_documents({}) == 0


async def test_an_unreachable_server_is_502(email_live: EmailLive) -> None:
    _, imap = await email_live.api("POST", "/api/accounts", expect=502,
                                   json=email_live.account_body(imap_port=free_port()))
    assert imap["error"]["code"] == "cannot_connect"
    assert imap["error"]["message"].startswith("Cannot reach the IMAP server 127.0.0.1:")
    _, smtp = await email_live.api("POST", "/api/accounts", expect=502,
                                   json=email_live.account_body(smtp_port=free_port()))
    assert smtp["error"]["code"] == "cannot_connect"
    assert smtp["error"]["message"].startswith("Cannot reach the SMTP server 127.0.0.1:")
    assert await email_live.db.accounts.count_documents({}) == 0


async def test_an_unknown_folder_is_named(email_live: EmailLive) -> None:
    _, body = await email_live.api("POST", "/api/accounts", expect=422,
                                   json=email_live.account_body(folder="Nowhere"))
    assert body["error"]["code"] == "folder_not_found" and "Nowhere" in body["error"]["message"]


@pytest.mark.parametrize(("options", "field"), [
    ({"security": "ssl"}, "options.security"),
    ({"imap_port": 0}, "options.imap_port"),
    ({"smtp_port": "587"}, "options.smtp_port"),
    ({"poll_seconds": 1}, "options.poll_seconds"),
    ({"imap_host": ""}, "options.imap_host"),
    ({"mailbox": "INBOX"}, "options.mailbox"),
])
async def test_options_are_validated_against_the_declared_fields(
        email_live: EmailLive, options: dict[str, object], field: str) -> None:
    _, body = await email_live.api("POST", "/api/accounts", expect=400,
                                   json=email_live.account_body(**options))
    assert body["error"]["code"] == "validation" and body["error"]["field"] == field
    assert email_live.smtp.logins == []  # refused before any server is asked


async def test_the_platform_schema_lists_the_mailbox_fields(email_live: EmailLive) -> None:
    _, body = await email_live.api("GET", "/api/platforms", expect=200)
    (email,) = [p for p in body["items"] if p["platform"] == "email"]
    assert email["modes"] == ["imap"] and email["webhook_modes"] == []
    options = {o["name"]: o for o in email["options"]}
    assert options["security"]["choices"] == ["tls", "starttls", "none"]
    assert {"address", "imap_host", "smtp_host"} <= {n for n, o in options.items()
                                                      if o["required"]}
    secrets = {c["name"] for c in email["credentials"] if c["secret"]}
    assert {"password", "oauth2_token", "oauth2_refresh_token"} <= secrets


def _non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine's own, not on the loopback interface (SIOCGIFADDR)."""
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915,
                                     struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
        address = socket.inet_ntoa(packed[20:24])
        if not address.startswith("127."):
            return address
    return None


@contextlib.asynccontextmanager
async def servers_on(host: str, user: str, password: str,
                     ) -> AsyncIterator[tuple[ImapSandbox, SmtpSandbox]]:
    imap = ImapSandbox(users={user: password}, host=host)
    smtp = SmtpSandbox(username=user, password=password, host=host)
    await imap.start()
    await smtp.start()
    try:
        yield imap, smtp
    finally:
        await smtp.stop()
        await imap.stop()


async def test_no_encryption_to_another_host_is_a_warning(email_live: EmailLive) -> None:
    """`security: none` is for a mail server on this machine; on any other host the account
    JSON carries a warning for each unencrypted connection. The servers here listen on this
    machine's own network address, which is not loopback."""
    host = _non_loopback_ipv4()
    if host is None:
        pytest.skip("this machine has no network address besides loopback")
    password = email_live.dovecot.password
    async with servers_on(host, email_live.user, password) as (imap, smtp):
        body = email_live.account_body(imap_host=host, imap_port=imap.port, smtp_host=host,
                                       smtp_port=smtp.port)
        _, account = await email_live.api("POST", "/api/accounts", expect=201, json=body)
        assert [(n["key"], n["level"], n["values"]) for n in account["notices"]] == [
            ("notice.insecure_connection", "warning", {"host": host, "port": imap.port}),
            ("notice.insecure_connection", "warning", {"host": host, "port": smtp.port})]
        assert account["notices"][0]["text"] == (
            f"The connection to {host}:{imap.port} is not encrypted. Use no security only "
            "for a mail server on this machine.")
        # once the SMTP server is on loopback, only the IMAP warning is left
        loopback = SmtpSandbox(username=email_live.user, password=password)
        await loopback.start()
        try:
            _, changed = await email_live.api(
                "PATCH", f"/api/accounts/{account['id']}", expect=200,
                json={"options": {"smtp_host": "127.0.0.1", "smtp_port": loopback.port}})
        finally:
            await loopback.stop()
        assert [n["values"]["host"] for n in changed["notices"]] == [host]
        await email_live.api("DELETE", f"/api/accounts/{account['id']}", expect=204)


async def test_a_server_without_idle_is_polled_and_says_so(email_live: EmailLive) -> None:
    user, password = email_live.user, email_live.dovecot.password
    imap = ImapSandbox(users={user: password},
                       capabilities=("IMAP4rev1", "UIDPLUS", "AUTH=PLAIN"))
    await imap.start()
    try:
        _, account = await email_live.api(
            "POST", "/api/accounts", expect=201,
            json=email_live.account_body(imap_port=imap.port, poll_seconds=5))
        assert account["info"]["idle"] is False
        (notice,) = account["notices"]
        assert (notice["key"], notice["level"]) == ("notice.no_idle", "info")
        assert notice["text"] == ("The IMAP server does not support IDLE: new mail is picked "
                                  "up every 5 seconds.")
        runners = email_live.live.services.hosting.runners
        await wait_for(lambda: _sessions(runners, account["id"]))
        await email_live.api("DELETE", f"/api/accounts/{account['id']}", expect=204)
    finally:
        await imap.stop()


async def _sessions(runners: dict[str, object], account_id: str) -> bool:
    runner = runners.get(account_id)
    return bool(runner is not None and runner.stats.sessions)  # type: ignore[attr-defined]
