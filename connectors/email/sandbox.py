"""A whole fake mail provider for tests and `switchboard demo`: IMAP, SMTP and control routes.

- IMAP: Dovecot when it is installed (`backend="dovecot"`, connectors/email/dovecot.py),
  else the in-process server of connectors/email/sandbox_imap.py (`backend="memory"`);
  `backend="auto"` picks. Customer mail is delivered with IMAP APPEND either way, so a session
  in IDLE sees it as it would see a real delivery.
- SMTP: connectors/email/sandbox_smtp.py (aiosmtpd), with failure injection and a record of
  every reply sent.
- Control (aiohttp, for the demo's UI and scripts), under `/_sandbox/`:
  `GET state`, `POST inbound` (JSON: from, from_name, subject, text, charset, in_reply_to,
  references), `POST inbound/raw` (an RFC 822 body), `POST bounce` (JSON: message_id, or the
  last reply), `GET sent`, `POST fail` (JSON: stage, code, message, times),
  `POST reset_uidvalidity`.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from connectors.email import dovecot as dovecot_server
from connectors.email.sandbox_imap import ImapSandbox
from connectors.email.sandbox_smtp import SentMail, SmtpSandbox, Stage

Backend = Literal["auto", "dovecot", "memory"]
PASSWORD = "sandbox-password"


def customer_mail(*, sender: str, name: str, subject: str, text: str, charset: str = "utf-8",
                  label: str | None = None, to: str = "support@acme.example",
                  in_reply_to: str | None = None, references: Sequence[str] = (),
                  message_id: str | None = None, when: datetime | None = None) -> bytes:
    """A mail as a customer's client writes it. `label` is the charset it claims; Chinese
    mailers often write GBK and label it GB2312 (`charset="gbk", label="gb2312"`)."""
    label = label or charset

    def word(value: str) -> str:  # RFC 2047, in the charset the mail claims
        if value.isascii():
            return value
        return f"=?{label}?B?{base64.b64encode(value.encode(charset)).decode()}?="

    body = base64.encodebytes(text.replace("\n", "\r\n").encode(charset)).decode()
    display = word(name) if not name.isascii() else f'"{name}"'
    lines = [f"From: {display} <{sender}>", f"To: {to}", f"Subject: {word(subject)}",
             f"Date: {format_datetime(when or datetime.now(UTC))}",
             f"Message-ID: {message_id or make_msgid(domain=sender.rpartition('@')[2])}"]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references or in_reply_to:
        lines.append("References: " + " ".join(f"<{r}>" for r in
                                               (*references, *([in_reply_to] if in_reply_to
                                                               else []))))
    lines += ["MIME-Version: 1.0", f'Content-Type: text/plain; charset="{label}"',
              "Content-Transfer-Encoding: base64", "", body]
    return "\r\n".join(lines).encode("ascii")


def bounce_of(sent: SentMail, *, status: str = "5.1.1",
              diagnostic: str = "550 5.1.1 The email account that you tried to reach does "
                                "not exist.") -> bytes:
    """The DSN (RFC 3464) a receiving MTA sends back for one of our replies."""
    recipient = sent.rcpt_tos[0] if sent.rcpt_tos else "unknown@invalid"
    headers = sent.data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    boundary = f"sb-dsn-{time.time_ns()}"
    return "\r\n".join([
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>",
        f"To: {sent.mail_from}", "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='mx.customer.example')}", "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "", f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "",
        f"Your message to <{recipient}> could not be delivered.", "", f"--{boundary}",
        "Content-Type: message/delivery-status", "", "Reporting-MTA: dns; mx.customer.example",
        f"Original-Envelope-Id: {sent.dsn.get('ENVID', '')}", "",
        f"Final-Recipient: rfc822; {recipient}", "Action: failed", f"Status: {status}",
        f"Diagnostic-Code: smtp; {diagnostic}", "", f"--{boundary}",
        "Content-Type: text/rfc822-headers", "", headers, "", f"--{boundary}--", "",
    ]).encode()


DEMO_MAILS: tuple[dict[str, Any], ...] = (
    {"sender": "lilei@customer.example", "name": "李雷", "subject": "订单 10234 什么时候发货？",
     "text": "你好，\n\n我上周五下的订单 10234 还没有发货，请帮忙查一下。\n\n谢谢！\n李雷",
     "charset": "gbk", "label": "gb2312"},
    {"sender": "hanmeimei@customer.example", "name": "韩梅梅", "subject": "发票抬头需要修改",
     "text": "您好，发票抬头请改为“北京某某科技有限公司”，税号 91110000XXXXXXXX。",
     "charset": "utf-8"},
    {"sender": "john.smith@customer.example", "name": "John Smith",
     "subject": "Refund for a damaged parcel",
     "text": "Hello,\n\nThe parcel arrived damaged. Could you refund order 10250?\n\nJohn",
     "charset": "utf-8"},
)


class EmailSandbox:
    def __init__(self, *, address: str = "support@acme.example", password: str = PASSWORD,
                 backend: Backend = "auto", idle: bool = True) -> None:
        self.address = address
        self.password = password
        self.backend: Backend = backend
        if backend == "auto":
            self.backend = "dovecot" if dovecot_server.find_binary() else "memory"
        capabilities = ["IMAP4rev1", "UIDPLUS", "LITERAL+", "AUTH=PLAIN", "AUTH=XOAUTH2"]
        self.imap = ImapSandbox(users={address: password},
                                capabilities=[*capabilities, *(["IDLE"] if idle else [])])
        self.smtp = SmtpSandbox(username=address, password=password)
        self.dovecot: dovecot_server.Dovecot | None = None
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------- lifecycle

    async def start(self, control_port: int = 0) -> str:
        if self.backend == "dovecot":
            root = Path(tempfile.mkdtemp(prefix="sb-demo-dovecot-"))
            self.dovecot = await asyncio.to_thread(dovecot_server.start_dovecot, root,
                                                   self.password)
            self.dovecot.add_user(self.address, self.password)
        else:
            await self.imap.start()
        await self.smtp.start()
        app = web.Application()
        app.add_routes(self._routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", control_port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.smtp.stop()
        if self.dovecot is not None:
            await asyncio.to_thread(dovecot_server.stop_dovecot, self.dovecot)
            self.dovecot = None
        else:
            await self.imap.stop()

    def account_options(self, **extra: Any) -> dict[str, Any]:
        imap_port = self.dovecot.port if self.dovecot else self.imap.port
        return {"address": self.address, "security": "none", "imap_host": "127.0.0.1",
                "imap_port": imap_port, "smtp_host": "127.0.0.1", "smtp_port": self.smtp.port,
                **extra}

    def credentials(self) -> dict[str, str]:
        return {"username": self.address, "password": self.password}

    # ------------------------------------------------------------------------- activity

    async def deliver(self, raw: bytes, folder: str = "INBOX") -> int:
        if self.dovecot is not None:
            return await asyncio.to_thread(self.dovecot.append, self.address, raw, folder)
        return self.imap.deliver(self.address, raw, folder)

    async def inject_customer(self, **fields: Any) -> int:
        return await self.deliver(customer_mail(to=self.address, **fields))

    async def inject_bounce(self, message_id: str | None = None) -> int:
        candidates = [m for m in self.smtp.sent
                      if message_id is None or message_id in str(m.message["Message-ID"])]
        if not candidates:
            raise LookupError(f"no reply {message_id or ''} was sent")
        return await self.deliver(bounce_of(candidates[-1]))

    async def seed_demo(self) -> list[int]:
        return [await self.inject_customer(**mail) for mail in DEMO_MAILS]

    def fail(self, stage: Stage, code: int, message: str, *, times: int = 1) -> None:
        self.smtp.fail(stage, code, message, times=times)

    @property
    def sent(self) -> list[SentMail]:
        return self.smtp.sent

    async def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[SentMail]:
        return await self.smtp.wait_for_sent(count, timeout)

    # ------------------------------------------------------------------------- control routes

    def _routes(self) -> list[web.RouteDef]:
        async def state(request: web.Request) -> web.Response:
            return web.json_response({"backend": self.backend, "address": self.address,
                                      "account_options": self.account_options(),
                                      "sent": len(self.smtp.sent)})

        async def inbound(request: web.Request) -> web.Response:
            body = await request.json()
            fields = {"sender": body.get("from", "customer@customer.example"),
                      "name": body.get("from_name", "Customer"),
                      "subject": body.get("subject", "(no subject)"),
                      "text": body.get("text", ""), "charset": body.get("charset", "utf-8"),
                      "label": body.get("label"), "in_reply_to": body.get("in_reply_to"),
                      "references": tuple(body.get("references") or ())}
            try:
                uid = await self.inject_customer(**fields)
            except (LookupError, UnicodeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"uid": uid})

        async def inbound_raw(request: web.Request) -> web.Response:
            return web.json_response({"uid": await self.deliver(await request.read())})

        async def bounce(request: web.Request) -> web.Response:
            body = await request.json() if request.can_read_body else {}
            try:
                uid = await self.inject_bounce(body.get("message_id"))
            except LookupError as exc:
                return web.json_response({"error": str(exc)}, status=404)
            return web.json_response({"uid": uid})

        async def sent(request: web.Request) -> web.Response:
            out = []
            for mail in self.smtp.sent:
                msg = mail.message
                body = msg.get_body(("plain",))
                out.append({"from": str(msg["From"]), "to": mail.rcpt_tos,
                            "subject": str(msg["Subject"] or ""),
                            "message_id": str(msg["Message-ID"]),
                            "in_reply_to": str(msg["In-Reply-To"] or ""),
                            "references": str(msg["References"] or ""),
                            "text": body.get_content() if body is not None else ""})
            return web.json_response(out)

        async def fail(request: web.Request) -> web.Response:
            body = await request.json()
            self.fail(body["stage"], int(body["code"]), str(body.get("message", "")),
                      times=int(body.get("times", 1)))
            return web.json_response({"ok": True})

        async def reset(request: web.Request) -> web.Response:
            if self.dovecot is not None:
                return web.json_response({"error": "only the memory backend"}, status=409)
            return web.json_response(
                {"uidvalidity": self.imap.reset_uidvalidity(self.address)})

        return [web.get("/_sandbox/state", state), web.post("/_sandbox/inbound", inbound),
                web.post("/_sandbox/inbound/raw", inbound_raw),
                web.post("/_sandbox/bounce", bounce), web.get("/_sandbox/sent", sent),
                web.post("/_sandbox/fail", fail),
                web.post("/_sandbox/reset_uidvalidity", reset)]
