"""The IMAP session against Dovecot: catch-up, IDLE, cursors, restarts, UIDVALIDITY changes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.email.connector import EmailConnector
from connectors.email.imap_session import CURSOR, Folder, ImapSession
from inbox.models import CredentialsRefused, DeliveryReport, InboundMessage
from tests.email_runtime import RecordingRuntime, email_account
from tests.email_servers import Dovecot, account_options, dovecot

__all__ = ["dovecot"]

INBOUND = Path(__file__).parent / "fixtures" / "email" / "inbound"


def fixture(name: str) -> bytes:
    return (INBOUND / f"{name}.eml").read_bytes()


def customer_mail(n: int, subject: str = "订单问题") -> bytes:
    return (f"From: 李雷 <lilei@customer.example>\r\nTo: support@acme.example\r\n"
            f"Subject: {subject} {n}\r\nMessage-ID: <m{n}.{time.time_ns()}@customer.example>\r\n"
            f"Date: Mon, 01 Dec 2025 10:00:00 +0800\r\nContent-Type: text/plain; "
            f"charset=utf-8\r\n\r\n第 {n} 封邮件。\r\n").encode()


class Running:
    """One session task with a recording runtime; `restart()` runs a new one on the same
    runtime (cursors and stored messages survive, as they do in the database)."""

    def __init__(self, connector: EmailConnector, runtime: RecordingRuntime) -> None:
        self.connector = connector
        self.runtime = runtime
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self.ready = asyncio.Event()

        async def ready() -> None:
            self.ready.set()

        session = self.connector.inbound()
        assert isinstance(session, ImapSession)
        self.task = asyncio.create_task(session.run(self.runtime, ready))
        done, _ = await asyncio.wait({self.task, asyncio.ensure_future(self.ready.wait())},
                                     timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
        assert self.ready.is_set(), "the session did not become ready"

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 10)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def session(dovecot: Dovecot, user: str, **options: object) -> AsyncIterator[Running]:
    account = email_account(account_options(dovecot, None, user, **options), username=user,
                            password=dovecot.password)
    runtime = RecordingRuntime(account)
    running = Running(EmailConnector(account, runtime), runtime)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_a_mail_appended_appears_once_within_a_second(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        await asyncio.sleep(0.3)  # let the session reach IDLE
        began = time.monotonic()
        await asyncio.to_thread(dovecot.append, user, customer_mail(1))
        (event,) = await running.runtime.wait_for(1, timeout=5)
        assert time.monotonic() - began < 1.0
        assert isinstance(event, InboundMessage) and event.text == "第 1 封邮件。"
        assert event.raw is not None and event.raw["imap"]["folder"] == "INBOX"
        await asyncio.sleep(0.5)
        assert sum(len(call) for call in running.runtime.sink_calls) == 1
        cursor = running.runtime.cursors[CURSOR]
        assert cursor["last_uid"] == 1
        assert cursor["uidvalidity"] == await asyncio.to_thread(dovecot.uidvalidity, user)


async def test_cursor_is_saved_only_after_the_sink(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        await asyncio.to_thread(dovecot.append, user, customer_mail(1))
        await running.runtime.wait_for(1)
        await asyncio.sleep(0.2)
        ((name, value, stored_then),) = running.runtime.cursor_saves[-1:]
        assert name == CURSOR and value["last_uid"] == 1 and stored_then == 1


async def test_a_failed_sink_saves_no_cursor_and_the_mail_comes_again(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, customer_mail(1))
    account = email_account(account_options(dovecot, None, user), username=user,
                            password=dovecot.password)
    runtime = RecordingRuntime(account, fail_sink=1)
    running = Running(EmailConnector(account, runtime), runtime)
    await running.start()
    assert running.task is not None
    with pytest.raises(RuntimeError, match="store is down"):
        await asyncio.wait_for(running.task, 10)
    assert CURSOR not in runtime.cursors
    await running.start()
    try:
        (event,) = await runtime.wait_for(1)
        assert isinstance(event, InboundMessage)
    finally:
        await running.stop()


async def test_a_restart_repeats_nothing(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        for n in range(3):
            await asyncio.to_thread(dovecot.append, user, customer_mail(n))
        await running.runtime.wait_for(3)
        calls_before = sum(len(c) for c in running.runtime.sink_calls)
        await running.restart()
        await asyncio.to_thread(dovecot.append, user, customer_mail(9))
        await running.runtime.wait_for(4)
        await asyncio.sleep(0.3)
        assert sum(len(c) for c in running.runtime.sink_calls) == calls_before + 1
        assert running.runtime.cursors[CURSOR]["last_uid"] == 4


async def test_first_run_imports_the_backfill_window_only(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    old = datetime.now(UTC) - timedelta(days=30)
    await asyncio.to_thread(dovecot.append, user, customer_mail(1), "INBOX", old)
    await asyncio.to_thread(dovecot.append, user, customer_mail(2))
    async with session(dovecot, user, backfill_days=7) as running:
        (event,) = await running.runtime.wait_for(1)
        await asyncio.sleep(0.3)
        assert isinstance(event, InboundMessage) and event.text == "第 2 封邮件。"
        assert len(running.runtime.stored) == 1


async def test_backfill_zero_starts_at_new_mail(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, customer_mail(1))
    async with session(dovecot, user, backfill_days=0) as running:
        await asyncio.to_thread(dovecot.append, user, customer_mail(2))
        (event,) = await running.runtime.wait_for(1)
        assert isinstance(event, InboundMessage) and event.text == "第 2 封邮件。"


async def test_uidvalidity_change_resyncs_deduplicated_by_message_id(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    folder = "Support"
    mails = [customer_mail(n) for n in range(3)]
    await asyncio.to_thread(dovecot.recreate, user, folder)
    for raw in mails:
        await asyncio.to_thread(dovecot.append, user, raw, folder)
    async with session(dovecot, user, folder=folder) as running:
        await running.runtime.wait_for(3)
        before = running.runtime.cursors[CURSOR]["uidvalidity"]
        await running.stop()
        await asyncio.to_thread(dovecot.recreate, user, folder)  # rebuilt: new UIDVALIDITY
        for raw in [*mails, customer_mail(7)]:
            await asyncio.to_thread(dovecot.append, user, raw, folder)
        await running.start()
        await running.runtime.wait_for(4)
        await asyncio.sleep(0.3)
        cursor = running.runtime.cursors[CURSOR]
        assert cursor["uidvalidity"] != before and cursor["last_uid"] == 4
        assert len(running.runtime.stored) == 4  # the three old mails were not stored twice
        offered = [e.external_id for call in running.runtime.sink_calls for e in call
                   if isinstance(e, InboundMessage)]
        assert len(offered) == 7 and len(set(offered)) == 4


async def test_noise_is_not_stored_but_bounces_are_reported(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        for name in ("auto_reply__sieve_vacation", "mailing_list__coremail_gbk",
                     "own__own_echo_reply", "bounce__postfix_failed",
                     "message__pdf_attachment"):
            await asyncio.to_thread(dovecot.append, user, fixture(name))
        await running.runtime.wait_for(2)
        await asyncio.sleep(0.3)
        kinds = sorted(type(e).__name__ for e in running.runtime.stored.values())
        assert kinds == ["DeliveryReport", "InboundMessage"]
        (report,) = running.runtime.reports
        assert isinstance(report, DeliveryReport)
        assert report.outbound_external_id == "173298001.52.sb7f3a9c@acme.example"
        assert running.runtime.cursors[CURSOR]["last_uid"] == 5


async def test_attachments_are_stored_as_blobs_before_the_sink(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        await asyncio.to_thread(dovecot.append, user, fixture("message__html_inline_image_and_eml"))
        (event,) = await running.runtime.wait_for(1)
        assert isinstance(event, InboundMessage)
        image, mail = event.attachments
        assert image.blob_id and mail.blob_id
        data, name, mime = running.runtime.blobs[image.blob_id]
        assert (name, mime, len(data)) == ("img.png", "image/png", 370)
        assert data.startswith(b"\x89PNG")


async def test_missing_date_takes_the_internal_date(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    when = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    await asyncio.to_thread(dovecot.append, user, fixture("message__iso_2022_jp"), "INBOX", when)
    async with session(dovecot, user, backfill_days=365) as running:
        (event,) = await running.runtime.wait_for(1)
        assert isinstance(event, InboundMessage) and event.platform_ts == when


async def test_wrong_password_ends_the_session_and_asks_for_new_credentials(
        dovecot: Dovecot) -> None:
    account = email_account(account_options(dovecot, None, "x"), username=dovecot.new_user(),
                            password="wrong")
    runtime = RecordingRuntime(account)
    session_source = EmailConnector(account, runtime).inbound()

    async def ready() -> None:
        raise AssertionError("not ready with a wrong password")

    with pytest.raises(CredentialsRefused, match="AUTHENTICATIONFAILED") as caught:
        await asyncio.wait_for(session_source.run(runtime, ready), 10)
    assert caught.value.code == "invalid_auth" and "wrong" not in caught.value.human


async def test_stopping_the_session_is_prompt(dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    async with session(dovecot, user) as running:
        await asyncio.sleep(0.3)
        began = time.monotonic()
        await running.stop()
        assert time.monotonic() - began < 2.0


def test_a_mail_announced_outside_idle_is_not_missed(dovecot: Dovecot) -> None:
    """Dovecot answers a SEARCH from the view the command started with and announces a mail
    that arrived meanwhile as `* n EXISTS` with that answer; it does not announce it again in
    IDLE. The folder sees the announcement and does not go to sleep on it."""
    user = dovecot.new_user()
    dovecot.append(user, customer_mail(1))
    with dovecot.client(user) as client:
        folder = Folder(client, "INBOX")
        folder.select()
        assert folder.uids_after(0) == [1]
        dovecot.append(user, customer_mail(2))
        time.sleep(0.1)
        seen = folder.uids_after(1)  # may or may not see UID 2 yet: the race being closed
        began = time.monotonic()
        assert folder.wait(threading.Event(), 5) is True
        assert seen == [2] or time.monotonic() - began < 0.2
        assert folder.uids_after(1) == [2]
        assert folder.wait(threading.Event(), 0.6) is False  # nothing new: IDLE, quietly
