"""security = "tls" (the default): implicit TLS to IMAP (993-style) and SMTP (465-style),
certificates verified against the system store or the account's `ca_file`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.base import ConnectError
from connectors.email.connector import EmailConnector
from connectors.email.sandbox_imap import ImapSandbox
from connectors.email.sandbox_smtp import SmtpSandbox
from inbox.models import (
    AccountId,
    AgentIdentity,
    ConversationId,
    MessageId,
    OutboundMessage,
    PermanentError,
    RenderContext,
)
from tests.email_runtime import RecordingRuntime, email_account

ADDRESS = "support@acme.example"
PASSWORD = "tls-test-password"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[ImapSandbox, SmtpSandbox, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    imap = ImapSandbox(users={ADDRESS: PASSWORD})
    smtp = SmtpSandbox(username=ADDRESS, password=PASSWORD)
    await imap.start(tls=context)
    await smtp.start(tls=context)
    try:
        yield imap, smtp, cert
    finally:
        await smtp.stop()
        await imap.stop()


def connector(imap: ImapSandbox, smtp: SmtpSandbox, **options: object) -> EmailConnector:
    account = email_account({"address": ADDRESS, "security": "tls", "imap_host": "127.0.0.1",
                             "imap_port": imap.port, "smtp_host": "127.0.0.1",
                             "smtp_port": smtp.port, **options}, password=PASSWORD)
    return EmailConnector(account, RecordingRuntime(account))


async def test_check_and_send_over_tls_with_the_accounts_ca(
        servers: tuple[ImapSandbox, SmtpSandbox, Path]) -> None:
    imap, smtp, cert = servers
    conn = connector(imap, smtp, ca_file=str(cert))
    assert conn.notices() == []
    info = await conn.check()
    assert info.platform_id == ADDRESS and imap.logins == [ADDRESS]
    rendered = conn.render(AgentIdentity(name="Li"), "hi", RenderContext(kind="email"))
    await conn.send(OutboundMessage(
        message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
        account_id=AccountId("a"), thread_key="t", text="hi", rendered=rendered,
        reply_to_author="a@customer.example"))
    (sent,) = await smtp.wait_for_sent(1)
    assert sent.login == ADDRESS


async def test_an_untrusted_certificate_is_refused(
        servers: tuple[ImapSandbox, SmtpSandbox, Path]) -> None:
    imap, smtp, _cert = servers
    conn = connector(imap, smtp)
    with pytest.raises(ConnectError) as caught:
        await conn.check()
    assert caught.value.code == "tls_failed" and "IMAP" in caught.value.message
    rendered = conn.render(AgentIdentity(name="Li"), "hi", RenderContext(kind="email"))
    with pytest.raises(PermanentError) as refused:
        await conn.send(OutboundMessage(
            message_id=MessageId("m1"), conversation_id=ConversationId("c1"),
            account_id=AccountId("a"), thread_key="t", text="hi", rendered=rendered,
            reply_to_author="a@customer.example"))
    assert refused.value.code == "tls_failed"
    assert imap.logins == [] and smtp.sent == []
