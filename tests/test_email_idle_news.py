"""News sent with IDLE's continuation is not left waiting in imaplib's buffer.

A mail that arrives after the session's last SEARCH is announced as soon as IDLE begins, and a
server may put that `* n EXISTS` into the same packet as the `+` continuation (the in-process
sandbox always does). imaplib reads the packet whole while looking for the continuation, so
the announcement sits in its buffer and the socket stays quiet: polling the socket alone would
sleep until the next change (up to the 9-minute IDLE renewal). Plain and TLS connections."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from connectors.email.imap_session import Folder
from connectors.email.sandbox import customer_mail
from connectors.email.sandbox_imap import ImapSandbox
from tests.test_email_tls import self_signed

ADDRESS = "support@acme.example"
PASSWORD = "idle-news-password"


@pytest.fixture(params=["plain", "tls"])
async def server(request: pytest.FixtureRequest, tmp_path: Path,
                 ) -> AsyncIterator[tuple[ImapSandbox, ssl.SSLContext | None]]:
    sandbox = ImapSandbox(users={ADDRESS: PASSWORD})
    client_context: ssl.SSLContext | None = None
    if request.param == "tls":
        cert, key = self_signed(tmp_path)
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        client_context = ssl.create_default_context(cafile=str(cert))
        await sandbox.start(tls=server_context)
    else:
        await sandbox.start()
    try:
        yield sandbox, client_context
    finally:
        await sandbox.stop()


def mail(n: int) -> bytes:
    return customer_mail(to=ADDRESS, sender="lilei@customer.example", name="李雷",
                         subject=f"订单 {n}", text=f"第 {n} 封邮件。",
                         message_id=f"<idle-news-{n}.{time.time_ns()}@customer.example>")


async def test_news_in_the_continuations_packet_wakes_the_folder_at_once(
        server: tuple[ImapSandbox, ssl.SSLContext | None]) -> None:
    sandbox, context = server
    sandbox.deliver(ADDRESS, mail(1))
    client = await asyncio.to_thread(
        IMAPClient, "127.0.0.1", port=sandbox.port, ssl=context is not None,
        ssl_context=context, timeout=5, use_uid=True)
    try:
        await asyncio.to_thread(client.login, ADDRESS, PASSWORD)
        folder = Folder(client, "INBOX")
        await asyncio.to_thread(folder.select)
        assert await asyncio.to_thread(folder.uids_after, 0) == [1]

        sandbox.deliver(ADDRESS, mail(2))  # after our SEARCH, before IDLE
        began = time.monotonic()
        assert await asyncio.to_thread(folder.wait, threading.Event(), 5.0) is True
        assert time.monotonic() - began < 1.0
        assert await asyncio.to_thread(folder.uids_after, 1) == [2]

        # nothing new: a quiet IDLE that ends at its deadline, the connection still usable
        assert await asyncio.to_thread(folder.wait, threading.Event(), 0.6) is False
        waiting = asyncio.ensure_future(asyncio.to_thread(folder.wait, threading.Event(), 5.0))
        await asyncio.sleep(0.3)
        sandbox.deliver(ADDRESS, mail(3))  # while idling: announced on its own
        assert await waiting is True
        assert await asyncio.to_thread(folder.uids_after, 2) == [3]
    finally:
        await asyncio.to_thread(client.logout)
