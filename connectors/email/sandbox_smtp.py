"""A receiving SMTP server for tests and `switchboard demo`, built on aiosmtpd (Apache-2.0).

It speaks real SMTP (aiosmtpd's server) in the running event loop: AUTH PLAIN / LOGIN
against one login and XOAUTH2 against a set of access tokens, plaintext AUTH allowed (it
listens on loopback), the DSN extension (RFC 3461: `ENVID`, `RET` on MAIL FROM) announced
and recorded. Answers can be injected per stage: `fail("rcpt", 550, "5.1.1 User unknown")`.
Every accepted mail is kept in `sent`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import warnings
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["auth", "mail", "rcpt", "data"]
_DSN_PARAM = re.compile(r"\s+(ENVID|RET)=(\S+)", re.IGNORECASE)


@dataclass
class SentMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    dsn: dict[str, str] = field(default_factory=dict)
    login: str | None = None

    @property
    def message(self) -> EmailMessage:
        msg = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Failure:
    stage: Stage
    answer: str
    times: int


class _DsnSMTP(SMTP):
    """aiosmtpd refuses MAIL parameters it does not implement; DSN's are taken off first."""

    async def smtp_MAIL(self, arg: str | None) -> None:
        dsn: dict[str, str] = {}
        if arg:
            for name, value in _DSN_PARAM.findall(arg):
                dsn[name.upper()] = value
            arg = _DSN_PARAM.sub("", arg)
        if self.session is not None:
            self.session.dsn = dsn  # type: ignore[attr-defined]
        await super().smtp_MAIL(arg)


class SmtpSandbox:
    def __init__(self, *, username: str = "support@acme.example",
                 password: str = "secret",  # noqa: S107 - the sandbox's own login
                 tokens: set[str] | None = None, require_auth: bool = True,
                 host: str = "127.0.0.1", hostname: str = "smtp.sandbox.test") -> None:
        self.username = username
        self.password = password
        self.tokens = set(tokens or ())
        self.require_auth = require_auth
        self.host = host
        self.hostname = hostname
        self.port = 0
        self.sent: list[SentMail] = []
        self.logins: list[tuple[str, str]] = []  # (mechanism, login) of every successful AUTH
        self._failures: list[_Failure] = []
        self._server: asyncio.base_events.Server | None = None
        self._arrived = asyncio.Condition()

    # ------------------------------------------------------------------------- control

    def fail(self, stage: Stage, code: int, message: str, *, times: int = 1) -> None:
        """Answer the next `times` commands of `stage` with `code message`."""
        self._failures.append(_Failure(stage, f"{code} {message}", times))

    def clear_failures(self) -> None:
        self._failures.clear()

    def _failure(self, stage: Stage) -> str | None:
        for failure in self._failures:
            if failure.stage == stage and failure.times > 0:
                failure.times -= 1
                return failure.answer
        return None

    async def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[SentMail]:
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.sent) >= count),
                                   timeout)
        return list(self.sent)

    async def start(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> int:
        """Listen (implicit TLS on the port, as submissions on 465, when `tls` is given)."""
        # aiosmtpd warns on every connection about plaintext AUTH and a deprecated attribute
        # it sets itself; neither is news here.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            with warnings.catch_warnings():  # plaintext AUTH is deliberate: loopback only
                warnings.simplefilter("ignore")
                return _DsnSMTP(self, hostname=self.hostname, auth_require_tls=False,
                                auth_required=self.require_auth,
                                authenticator=self._authenticate, loop=loop)

        self._server = await loop.create_server(factory, self.host, port, ssl=tls)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # ------------------------------------------------------------------------- aiosmtpd hooks

    def _auth_failure(self, session: Session) -> str | None:
        """An injected AUTH answer holds for every mechanism the client tries on that
        connection (clients fall back from PLAIN to LOGIN)."""
        if not hasattr(session, "sb_auth_failure"):
            session.sb_auth_failure = self._failure("auth")  # type: ignore[attr-defined]
        return session.sb_auth_failure  # type: ignore[attr-defined, no-any-return]

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        injected = self._auth_failure(session)
        if injected is not None:
            return AuthResult(success=False, handled=False, message=injected)
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if login == self.username and password == self.password:
                self.logins.append((mechanism, login))
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """https://developers.google.com/gmail/imap/xoauth2-protocol: `user=…^Aauth=Bearer
        …^A^A`; a refused token gets the JSON challenge, then 535 after the empty reply."""
        assert server.session is not None
        injected = self._auth_failure(server.session)
        if injected is not None:
            return AuthResult(success=False, handled=False, message=injected)
        try:
            decoded = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        fields = dict(p.split("=", 1) for p in decoded.split("\x01") if "=" in p)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if user == self.username and token in self.tokens:
            self.logins.append(("XOAUTH2", user))
            return AuthResult(success=True, auth_data=user)
        challenge = base64.b64encode(b'{"status":"401","schemes":"bearer"}').decode()
        await server.push(f"334 {challenge}")
        await server._reader.readline()
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-DSN", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        injected = self._failure("mail")
        if injected is not None:
            return injected
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        injected = self._failure("rcpt")
        if injected is not None:
            return injected
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        injected = self._failure("data")
        if injected is not None:
            return injected
        data = envelope.original_content or b""
        mail = SentMail(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(data),
                        dict(getattr(session, "dsn", {}) or {}),
                        session.auth_data if isinstance(session.auth_data, str) else None)
        async with self._arrived:
            self.sent.append(mail)
            self._arrived.notify_all()
        return "250 2.0.0 OK: queued"
