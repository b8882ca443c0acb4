"""The long-lived IMAP session: catch up on the folder, then IMAP IDLE (or poll) for more.

Run by the host's session runtime (connectors/hosting.py: one owner across processes,
restarted with backoff when `run` raises; `CredentialsRefused` makes the account
`needs_reauth`). imapclient is blocking, so every IMAP call runs on one worker thread that
belongs to this session; the event loop only awaits it.

The cursor (`runtime.load_cursor("imap")`) is `{"uidvalidity", "last_uid", "last_date"}`
and is saved only after `runtime.sink` returned for the mails up to `last_uid`, so a restart
neither loses nor repeats a mail. UIDs only mean something together with the folder's
UIDVALIDITY (RFC 3501 §2.3.1.1): when it changes (the folder was rebuilt or migrated), the
folder is read again from a day before the newest mail we had stored, and every mail goes to
the sink again — the host's unique index on (account, external_id = Message-ID) makes each
repeat a no-op, which is the deduplication by Message-ID.

IDLE (RFC 2177) where the server announces it, re-issued every few minutes (servers drop
idle clients after 30); polling every `poll_seconds` otherwise. Mails are read with
`BODY.PEEK[]`, so nothing is marked read and the mailbox can be shared with a mail client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from connectors.base import AccountRuntime
from connectors.email import imap
from connectors.email.settings import MailSettings
from inbox.models import CredentialsRefused, TransientError

if TYPE_CHECKING:
    from connectors.email.connector import EmailConnector

log = logging.getLogger(__name__)

CURSOR = "imap"
BATCH = 25
MAX_FETCH_BYTES = 50 * 1024 * 1024
IDLE_RENEW = 9 * 60.0
IDLE_SLICE = 0.5
T = TypeVar("T")


class Folder:
    """The selected folder of one logged-in client (blocking calls, worker thread only)."""

    def __init__(self, client: IMAPClient, name: str) -> None:
        self.client = client
        self.name = name
        self.uidvalidity = 0
        self.uidnext = 1
        self.idle = False

    def select(self) -> None:
        info = self.client.select_folder(self.name, readonly=True)
        self.uidvalidity = int(info.get(b"UIDVALIDITY", 0))
        self.uidnext = int(info.get(b"UIDNEXT", 1))
        self.idle = self.client.has_capability("IDLE")
        self.announced()  # SELECT's own EXISTS is not news

    def announced(self) -> bool:
        """Whether the server announced a change of the folder (`EXISTS`, RFC 3501 §7.3.1) in
        its answer to one of our commands since we last looked. A server may do so after a
        SEARCH or FETCH (Dovecot does, for a mail that arrived while the command ran); imaplib
        keeps such untagged answers aside in `untagged_responses`, and the server will not
        announce the mail again in IDLE, so without this look it would wait for the next
        change (seen against Dovecot 2.3: SEARCH answered the old view plus `* 2 EXISTS`)."""
        pending = getattr(self.client._imap, "untagged_responses", None)
        if not isinstance(pending, dict):
            return False
        changed = bool(pending.pop("EXISTS", None))
        pending.pop("RECENT", None)
        return changed

    def buffered(self) -> bool:
        """Whether the server's next lines are already in imaplib's read buffer. A server that
        has news when IDLE begins may send it in the same packet as the `+` continuation
        (the sandbox does; Dovecot may, for a mail that arrived after our last SEARCH).
        imaplib reads that packet whole to find the continuation, so the news waits in its
        buffer while `idle_check` polls the socket, which stays quiet until the next change."""
        reader = getattr(self.client._imap, "file", None)
        if reader is None or not hasattr(reader, "peek"):
            return False
        sock = self.client.socket()
        sock.setblocking(False)
        try:
            return bool(reader.peek(1))
        except OSError:  # nothing to read (TLS answers "want read" rather than EAGAIN)
            return False
        finally:
            sock.setblocking(True)
            self.client._set_read_timeout()

    def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always matches the highest UID even when it is below n (RFC 3501 §6.4.8),
        # hence the filter.
        found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(int(u) for u in found if int(u) > last_uid)

    def uids_since(self, since: datetime) -> list[int]:
        return sorted(int(u) for u in self.client.search(["SINCE", since.date()]))

    def fetch(self, uids: list[int]) -> list[tuple[int, bytes | None, datetime | None, int]]:
        """(uid, raw bytes or None when too big, INTERNALDATE, size) in UID order."""
        meta = self.client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE"])
        small = [u for u in uids if int(meta.get(u, {}).get(b"RFC822.SIZE", 0)) <= MAX_FETCH_BYTES]
        bodies = self.client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        out = []
        for uid in uids:
            info = meta.get(uid)
            if info is None:  # expunged meanwhile
                continue
            when = info.get(b"INTERNALDATE")
            if isinstance(when, datetime) and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            raw = bodies.get(uid, {}).get(b"BODY[]")
            out.append((uid, raw if isinstance(raw, bytes) else None,
                        when if isinstance(when, datetime) else None,
                        int(info.get(b"RFC822.SIZE", 0))))
        return out

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """IDLE until the server reports a change (True), `seconds` pass or `stop` is set;
        at once when the server already announced one (see `announced`)."""
        if self.announced():
            return True
        self.client.idle()
        changed = self.buffered()
        hollow = 0
        try:
            deadline = time.monotonic() + seconds
            while not changed and not stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic()
                if self.client.idle_check(timeout=IDLE_SLICE):
                    changed = True
                    break
                # imapclient answers [] at once when the socket is readable but at EOF:
                # repeated instant empty answers mean the server has gone.
                hollow = hollow + 1 if time.monotonic() - began < IDLE_SLICE / 4 else 0
                if hollow >= 3:
                    raise ConnectionError("the IMAP server closed the connection")
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.idle_done()
            raise
        self.client.idle_done()
        # news that came with DONE's answer is kept by imaplib as untagged: a change too
        return self.announced() or changed

    def noop(self) -> None:
        self.client.noop()


class ImapSession:
    """`SessionSource` for one mailbox account."""

    name = "imap"

    def __init__(self, connector: EmailConnector) -> None:
        self.connector = connector
        self._stop = threading.Event()

    @property
    def settings(self) -> MailSettings:
        return self.connector.settings

    async def run(self, runtime: AccountRuntime, ready: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-session")
        self._stop.clear()

        async def call(fn: Callable[..., T], *args: Any) -> T:
            return await loop.run_in_executor(executor, fn, *args)

        client: IMAPClient | None = None
        try:
            try:
                client = await call(imap.connect, self.settings)
            except LoginError as exc:
                if imap.is_temporary(exc):
                    raise
                if self.settings.oauth2_token and await self.connector.ensure_fresh_token():
                    raise TransientError("The access token had expired and was refreshed; "
                                         "the session starts again.",
                                         code="token_refreshed") from exc
                # the host marks the account needs_reauth and waits for new credentials
                error = imap.connect_error(exc, self.settings)
                raise CredentialsRefused(error.message, code=error.code) from exc
            folder = Folder(client, self.settings.folder)
            await call(folder.select)
            await ready()
            cursor = await self._start_cursor(runtime, folder, call)
            while True:
                cursor = await self._catch_up(runtime, folder, cursor, call)
                if folder.idle:
                    await call(folder.wait, self._stop, IDLE_RENEW)
                else:
                    await asyncio.sleep(self.settings.poll_seconds)
                    await call(folder.noop)
        finally:
            self._stop.set()
            if client is not None:
                try:
                    await asyncio.wait_for(call(imap.close, client), timeout=5)
                except Exception:
                    log.debug("IMAP logout failed", exc_info=True)
            executor.shutdown(wait=False, cancel_futures=True)

    async def _start_cursor(self, runtime: AccountRuntime, folder: Folder,
                            call: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
        """Where to start: the saved cursor; after a UIDVALIDITY change or on the very first
        run, the UID just before the window to read again (the host deduplicates)."""
        saved = await runtime.load_cursor(CURSOR)
        if isinstance(saved, dict) and saved.get("uidvalidity") == folder.uidvalidity:
            return dict(saved)
        since: datetime | None = None
        if isinstance(saved, dict) and saved.get("last_date"):
            try:
                since = datetime.fromisoformat(str(saved["last_date"])) - timedelta(days=1)
            except ValueError:
                since = None
            log.warning("UIDVALIDITY of %s changed (%s → %s): reading it again since %s",
                        folder.name, saved.get("uidvalidity"), folder.uidvalidity, since)
        if since is None and self.settings.backfill_days > 0:
            since = await runtime.now() - timedelta(days=self.settings.backfill_days)
        if since is None:
            return {"uidvalidity": folder.uidvalidity, "last_uid": folder.uidnext - 1,
                    "last_date": None}
        window = await call(folder.uids_since, since)
        first = min(window) if window else folder.uidnext
        return {"uidvalidity": folder.uidvalidity, "last_uid": first - 1,
                "last_date": saved.get("last_date") if isinstance(saved, dict) else None}

    async def _catch_up(self, runtime: AccountRuntime, folder: Folder, cursor: dict[str, Any],
                        call: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
        uids = await call(folder.uids_after, int(cursor.get("last_uid") or 0))
        for start in range(0, len(uids), BATCH):
            batch = uids[start:start + BATCH]
            mails = await call(folder.fetch, batch)
            events = []
            newest = cursor.get("last_date")
            for uid, raw, when, size in mails:
                if when is not None and (newest is None or when.isoformat() > newest):
                    newest = when.isoformat()
                if raw is None:
                    log.warning("mail UID %s of %s is %s bytes, over the %s-byte limit; left "
                                "on the server", uid, folder.name, size, MAX_FETCH_BYTES)
                    continue
                events.extend(await self.connector.ingest(
                    raw, internal_date=when,
                    location={"folder": folder.name, "uidvalidity": folder.uidvalidity,
                              "uid": uid}))
            if events:
                await runtime.sink(events)
            cursor = {"uidvalidity": folder.uidvalidity, "last_uid": batch[-1],
                      "last_date": newest}
            await runtime.save_cursor(cursor, CURSOR)
        return cursor

    def stop(self) -> None:
        self._stop.set()
