"""A minimal IMAP4rev1 server (RFC 3501) on asyncio streams, for `switchboard demo` without
Dovecot and for tests of the session code against a second, independent server.

It implements what a client like imapclient needs to read a folder: CAPABILITY, LOGIN,
AUTHENTICATE XOAUTH2, SELECT / EXAMINE (with UIDVALIDITY and UIDNEXT), UID SEARCH (ALL,
UID ranges, SINCE), UID FETCH (UID, FLAGS, RFC822.SIZE, INTERNALDATE, BODY[] /
BODY.PEEK[] / RFC822), IDLE (RFC 2177), APPEND (with synchronising and LITERAL+ literals),
STATUS, LIST, NOOP, LOGOUT. Not a mail store: no flags changes, no expunge, one folder tree
per user held in memory. `capabilities` can leave IDLE out to exercise the polling path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")
_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"|(\()|(\))|([^\s()"]+))')


@dataclass
class Mail:
    uid: int
    raw: bytes
    internal_date: datetime
    flags: tuple[str, ...] = ()


@dataclass
class Mailbox:
    name: str
    uidvalidity: int
    uidnext: int = 1
    mails: list[Mail] = field(default_factory=list)
    watchers: set[asyncio.Queue[int]] = field(default_factory=set)

    def add(self, raw: bytes, when: datetime | None = None) -> int:
        mail = Mail(self.uidnext, raw, when or datetime.now(UTC))
        self.uidnext += 1
        self.mails.append(mail)
        for queue in self.watchers:
            queue.put_nowait(len(self.mails))
        return mail.uid


def _imap_date(when: datetime) -> str:
    local = when.astimezone(UTC)
    return f"{local.day:02d}-{_MONTHS[local.month - 1]}-{local.year} {local:%H:%M:%S} +0000"


def _parse_date(text: str) -> datetime | None:
    match = re.match(r"(\d{1,2})-(\w{3})-(\d{4})(?: (\d\d):(\d\d):(\d\d) ([+-]\d{4}))?", text)
    if not match or match.group(2).title() not in _MONTHS:
        return None
    day, month, year = int(match.group(1)), _MONTHS.index(match.group(2).title()) + 1, int(
        match.group(3))
    if match.group(4) is None:
        return datetime(year, month, day, tzinfo=UTC)
    zone = int(match.group(7))
    offset = timedelta(hours=abs(zone) // 100, minutes=abs(zone) % 100)
    when = datetime(year, month, day, int(match.group(4)), int(match.group(5)),
                    int(match.group(6)), tzinfo=UTC)
    return when - offset if zone >= 0 else when + offset


def _uid_set(text: str, highest: int) -> set[int]:
    wanted: set[int] = set()
    for piece in text.split(","):
        if ":" in piece:
            a, b = piece.split(":", 1)
            lo = highest if a == "*" else int(a)
            hi = highest if b == "*" else int(b)
            lo, hi = min(lo, hi), max(lo, hi)
            wanted.update(range(lo, hi + 1))
        elif piece:
            wanted.add(highest if piece == "*" else int(piece))
    return wanted


def _tokens(data: bytes, literals: list[bytes]) -> list[bytes | list[object]]:
    """Atoms, quoted strings and literals (marked \\x00<n>) of one command, with lists."""
    out: list[object] = []
    stack: list[list[object]] = [out]
    pos = 0
    while pos < len(data):
        match = _TOKEN.match(data, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        quoted, opening, closing, atom = match.groups()
        if opening:
            stack[-1].append([])
            stack.append(stack[-1][-1])  # type: ignore[arg-type]
        elif closing:
            if len(stack) > 1:
                stack.pop()
        elif quoted is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", quoted))
        elif atom is not None:
            if atom.startswith(b"\x00"):
                stack[-1].append(literals[int(atom[1:])])
            else:
                stack[-1].append(atom)
    return out  # type: ignore[return-value]


class ImapSandbox:
    """`await start() -> port`, `add_user`, `deliver(user, raw)`, `reset_uidvalidity`."""

    def __init__(self, *, users: dict[str, str] | None = None, tokens: set[str] | None = None,
                 capabilities: Iterable[str] = ("IMAP4rev1", "IDLE", "UIDPLUS", "LITERAL+",
                                                "AUTH=PLAIN", "AUTH=XOAUTH2"),
                 host: str = "127.0.0.1") -> None:
        self.passwords = dict(users or {})
        self.tokens = set(tokens or ())
        self.capabilities = " ".join(capabilities)
        self.host = host
        self.port = 0
        self.mailboxes: dict[str, dict[str, Mailbox]] = {}
        self.logins: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._validity = int(datetime.now(UTC).timestamp())

    # ------------------------------------------------------------------------- control

    def add_user(self, user: str, password: str) -> None:
        self.passwords[user] = password

    def folder(self, user: str, name: str = "INBOX") -> Mailbox:
        folders = self.mailboxes.setdefault(user, {})
        key = "INBOX" if name.upper() == "INBOX" else name
        if key not in folders:
            self._validity += 1
            folders[key] = Mailbox(key, self._validity)
        return folders[key]

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX",
                when: datetime | None = None) -> int:
        return self.folder(user, folder).add(raw, when)

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """The folder rebuilt: same mails, new UIDs from 1, a new UIDVALIDITY."""
        box = self.folder(user, folder)
        self._validity += 1
        box.uidvalidity = self._validity
        for index, mail in enumerate(box.mails, 1):
            mail.uid = index
        box.uidnext = len(box.mails) + 1
        return box.uidvalidity

    async def start(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> int:
        """Listen (implicit TLS on the port, as IMAPS on 993, when `tls` is given)."""
        self._server = await asyncio.start_server(self._serve, self.host, port, ssl=tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._clients):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    async def drop_connections(self) -> None:
        """Close every client connection (a server restart, as the client sees it)."""
        for writer in list(self._clients):
            writer.close()

    # ------------------------------------------------------------------------- protocol

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        session = _Session(self, reader, writer)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(writer)
            session.unwatch()
            writer.close()


class _Session:
    def __init__(self, server: ImapSandbox, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.user: str | None = None
        self.box: Mailbox | None = None
        self.queue: asyncio.Queue[int] = asyncio.Queue()

    async def send(self, line: str | bytes) -> None:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()

    def unwatch(self) -> None:
        if self.box is not None:
            self.box.watchers.discard(self.queue)

    async def read_command(self) -> tuple[bytes, list[bytes]]:
        line = await self.reader.readuntil(b"\r\n")
        literals: list[bytes] = []
        parts = []
        while (match := _LITERAL.search(line)) is not None:
            size, plus = int(match.group(1)), match.group(2)
            parts.append(line[:match.start()] + b"\x00" + str(len(literals)).encode())
            if not plus:
                await self.send("+ Ready for literal data")
            literals.append(await self.reader.readexactly(size))
            line = await self.reader.readuntil(b"\r\n")
        parts.append(line[:-2])
        return b"".join(parts), literals

    async def run(self) -> None:
        await self.send(f"* OK [CAPABILITY {self.server.capabilities}] Switchboard sandbox IMAP")
        while True:
            data, literals = await self.read_command()
            tokens = _tokens(data, literals)
            if len(tokens) < 2 or not all(isinstance(t, bytes) for t in tokens[:2]):
                await self.send("* BAD Invalid command")
                continue
            tag = tokens[0].decode()  # type: ignore[union-attr]
            command = tokens[1].decode().upper()  # type: ignore[union-attr]
            args = tokens[2:]
            if command == "UID" and args and isinstance(args[0], bytes):
                command, args = "UID " + args[0].decode().upper(), args[1:]
            handler = getattr(self, "cmd_" + command.replace(" ", "_"), None)
            if handler is None:
                await self.send(f"{tag} BAD Unknown command {command}")
                continue
            if command not in ("CAPABILITY", "LOGIN", "AUTHENTICATE", "NOOP", "LOGOUT") and (
                    self.user is None):
                await self.send(f"{tag} NO Log in first")
                continue
            if await handler(tag, args) is False:
                return

    # ------------------------------------------------------------------------- commands

    async def cmd_CAPABILITY(self, tag: str, args: list[object]) -> None:
        await self.send(f"* CAPABILITY {self.server.capabilities}")
        await self.send(f"{tag} OK CAPABILITY completed")

    async def cmd_NOOP(self, tag: str, args: list[object]) -> None:
        await self._report_new()
        await self.send(f"{tag} OK NOOP completed")

    async def cmd_LOGOUT(self, tag: str, args: list[object]) -> bool:
        await self.send("* BYE Logging out")
        await self.send(f"{tag} OK LOGOUT completed")
        return False

    async def cmd_LOGIN(self, tag: str, args: list[object]) -> None:
        user = args[0].decode() if args and isinstance(args[0], bytes) else ""
        password = args[1].decode() if len(args) > 1 and isinstance(args[1], bytes) else ""
        if self.server.passwords.get(user) == password and password:
            self.user = user
            self.server.logins.append(user)
            await self.send(f"{tag} OK [CAPABILITY {self.server.capabilities}] Logged in")
        else:
            await self.send(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")

    async def cmd_AUTHENTICATE(self, tag: str, args: list[object]) -> None:
        mechanism = args[0].decode().upper() if args and isinstance(args[0], bytes) else ""
        if mechanism != "XOAUTH2":
            await self.send(f"{tag} NO Unsupported mechanism")
            return
        await self.send("+ ")
        answer = (await self.reader.readuntil(b"\r\n")).strip()
        try:
            decoded = base64.b64decode(answer).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        fields = dict(p.split("=", 1) for p in decoded.split("\x01") if "=" in p)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if user and token in self.server.tokens:
            self.user = user
            self.server.logins.append(user)
            await self.send(f"{tag} OK Logged in")
        else:
            await self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")

    async def _select(self, tag: str, args: list[object], readonly: bool) -> None:
        name = args[0].decode() if args and isinstance(args[0], bytes) else "INBOX"
        assert self.user is not None
        folders = self.server.mailboxes.get(self.user, {})
        if name.upper() != "INBOX" and name not in folders:
            await self.send(f"{tag} NO [NONEXISTENT] Mailbox doesn't exist: {name}")
            return
        self.unwatch()
        self.box = self.server.folder(self.user, name)
        self.queue = asyncio.Queue()
        self.box.watchers.add(self.queue)
        self.seen = len(self.box.mails)
        await self.send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        await self.send(f"* {len(self.box.mails)} EXISTS")
        await self.send("* 0 RECENT")
        await self.send(f"* OK [UIDVALIDITY {self.box.uidvalidity}] UIDs valid")
        await self.send(f"* OK [UIDNEXT {self.box.uidnext}] Predicted next UID")
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        await self.send(f"{tag} OK [{mode}] {'EXAMINE' if readonly else 'SELECT'} completed")

    async def cmd_SELECT(self, tag: str, args: list[object]) -> None:
        await self._select(tag, args, readonly=False)

    async def cmd_EXAMINE(self, tag: str, args: list[object]) -> None:
        await self._select(tag, args, readonly=True)

    async def cmd_LIST(self, tag: str, args: list[object]) -> None:
        assert self.user is not None
        self.server.folder(self.user, "INBOX")
        for name in self.server.mailboxes[self.user]:
            await self.send(f'* LIST (\\HasNoChildren) "/" "{name}"')
        await self.send(f"{tag} OK LIST completed")

    async def cmd_STATUS(self, tag: str, args: list[object]) -> None:
        assert self.user is not None
        name = args[0].decode() if args and isinstance(args[0], bytes) else "INBOX"
        box = self.server.folder(self.user, name)
        await self.send(f'* STATUS "{box.name}" (MESSAGES {len(box.mails)} UIDNEXT '
                        f"{box.uidnext} UIDVALIDITY {box.uidvalidity})")
        await self.send(f"{tag} OK STATUS completed")

    async def cmd_APPEND(self, tag: str, args: list[object]) -> None:
        assert self.user is not None
        name = args[0].decode() if args and isinstance(args[0], bytes) else "INBOX"
        raw, when = args[-1], None
        for extra in args[1:-1]:
            if isinstance(extra, bytes):
                when = _parse_date(extra.decode())
        if not isinstance(raw, bytes):
            await self.send(f"{tag} BAD APPEND needs a message literal")
            return
        box = self.server.folder(self.user, name)
        uid = box.add(raw, when)
        await self.send(f"{tag} OK [APPENDUID {box.uidvalidity} {uid}] APPEND completed")

    async def _report_new(self) -> None:
        if self.box is not None and len(self.box.mails) != getattr(self, "seen", 0):
            self.seen = len(self.box.mails)
            await self.send(f"* {self.seen} EXISTS")

    async def cmd_IDLE(self, tag: str, args: list[object]) -> None:
        if self.box is not None and len(self.box.mails) != getattr(self, "seen", 0):
            # news at once, in the continuation's own write, as a server may send it
            self.seen = len(self.box.mails)
            await self.send(f"+ idling\r\n* {self.seen} EXISTS")
        else:
            await self.send("+ idling")
        done = asyncio.ensure_future(self.reader.readuntil(b"\r\n"))
        try:
            while True:
                await self._report_new()
                waiter = asyncio.ensure_future(self.queue.get())
                finished, _ = await asyncio.wait({done, waiter},
                                                 return_when=asyncio.FIRST_COMPLETED)
                if waiter not in finished:
                    waiter.cancel()
                if done in finished:
                    break
        finally:
            if not done.done():
                done.cancel()
        await self.send(f"{tag} OK IDLE terminated")

    def _select_uids(self, args: list[object]) -> list[Mail]:
        assert self.box is not None
        mails = list(self.box.mails)
        index = 0
        while index < len(args):
            word = args[index]
            if not isinstance(word, bytes):
                index += 1
                continue
            key = word.decode().upper()
            if key in ("ALL", "CHARSET"):
                index += 2 if key == "CHARSET" else 1
                continue
            if key == "UID" and index + 1 < len(args):
                value = args[index + 1]
                highest = max((m.uid for m in self.box.mails), default=0)
                wanted = _uid_set(value.decode() if isinstance(value, bytes) else "", highest)
                mails = [m for m in mails if m.uid in wanted]
                index += 2
            elif key == "SINCE" and index + 1 < len(args):
                value = args[index + 1]
                since = _parse_date(value.decode()) if isinstance(value, bytes) else None
                if since is not None:
                    mails = [m for m in mails if m.internal_date.date() >= since.date()]
                index += 2
            else:
                index += 1
        return mails

    async def cmd_UID_SEARCH(self, tag: str, args: list[object]) -> None:
        if self.box is None:
            await self.send(f"{tag} BAD No mailbox selected")
            return
        found = " ".join(str(m.uid) for m in self._select_uids(args))
        await self.send(f"* SEARCH {found}".rstrip())
        await self.send(f"{tag} OK SEARCH completed")

    async def cmd_UID_FETCH(self, tag: str, args: list[object]) -> None:
        if self.box is None or len(args) < 2 or not isinstance(args[0], bytes):
            await self.send(f"{tag} BAD No mailbox selected or bad arguments")
            return
        highest = max((m.uid for m in self.box.mails), default=0)
        wanted = _uid_set(args[0].decode(), highest)
        items = args[1] if isinstance(args[1], list) else args[1:]
        names = [i.decode().upper() for i in items if isinstance(i, bytes)]
        for seq, mail in enumerate(self.box.mails, 1):
            if mail.uid not in wanted:
                continue
            parts: list[bytes] = [f"UID {mail.uid}".encode()]
            for name in names:
                if name == "FLAGS":
                    parts.append(f"FLAGS ({' '.join(mail.flags)})".encode())
                elif name == "RFC822.SIZE":
                    parts.append(f"RFC822.SIZE {len(mail.raw)}".encode())
                elif name == "INTERNALDATE":
                    parts.append(f'INTERNALDATE "{_imap_date(mail.internal_date)}"'.encode())
                elif name in ("BODY[]", "BODY.PEEK[]", "RFC822"):
                    label = "RFC822" if name == "RFC822" else "BODY[]"
                    parts.append(f"{label} {{{len(mail.raw)}}}\r\n".encode() + mail.raw)
            await self.send(f"* {seq} FETCH (".encode() + b" ".join(parts) + b")")
        await self.send(f"{tag} OK FETCH completed")
