"""Delivery status notifications (bounces) of our own replies, RFC 3464.

A DSN is `multipart/report; report-type=delivery-status`
(https://www.rfc-editor.org/rfc/rfc6522): a human-readable part, a `message/delivery-status`
part (one block of per-message fields, then one block per recipient with `Action`, `Status`,
`Diagnostic-Code`), and the returned message or only its headers (`message/rfc822` or
`text/rfc822-headers`). Which of our replies bounced is read from the returned headers'
`Message-ID`, else from `Original-Envelope-Id` (we send our Message-ID as the ENVID where the
server offers DSN, RFC 3461 §4.4, xtext-encoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from connectors.email import mime

OWN_HEADER = "X-Switchboard"  # set on every reply we send (render.py); its value is our id

# RFC 3463 enhanced status codes, in words (subject.detail; class 4 = temporary, 5 = permanent).
_STATUS_WORDS = {
    "0.0": "other or undefined status", "1.0": "other address status",
    "1.1": "bad destination mailbox address", "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax", "1.6": "destination mailbox has moved",
    "2.0": "other or undefined mailbox status", "2.1": "mailbox disabled, not accepting messages",
    "2.2": "mailbox full", "2.3": "message length exceeds administrative limit",
    "3.0": "other or undefined mail system status", "3.4": "message too big for system",
    "4.0": "other or undefined network or routing status", "4.1": "no answer from host",
    "4.4": "unable to route", "4.7": "delivery time expired",
    "5.0": "other or undefined protocol status", "6.0": "other or undefined media error",
    "7.0": "other or undefined security status", "7.1": "delivery not authorized, message refused",
    "7.26": "multiple authentication checks failed",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    action: str
    status: str | None
    diagnostic: str | None


@dataclass(frozen=True, slots=True)
class Report:
    original_message_id: str | None
    recipients: tuple[Recipient, ...]
    original_own_header: str | None = None  # the returned mail's X-Switchboard (our reply id)

    @property
    def failed(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.action == "failed")

    def reason(self) -> str:
        """What went wrong, in words: each failed recipient with the server's sentence."""
        lines = []
        for rcpt in self.failed:
            words = status_words(rcpt.status)
            detail = rcpt.diagnostic or words or "delivery failed"
            if rcpt.status and words and words not in detail:
                detail = f"{detail} ({rcpt.status}: {words})"
            lines.append(f"{rcpt.address}: {detail}" if rcpt.address else detail)
        return "; ".join(lines) or "The mail could not be delivered."


def status_words(status: str | None) -> str | None:
    if not status:
        return None
    match = re.match(r"\s*([245])\.(\d{1,3})\.(\d{1,3})", status)
    if not match:
        return None
    return _STATUS_WORDS.get(f"{match.group(2)}.{match.group(3)}",
                             _STATUS_WORDS.get(f"{match.group(2)}.0"))


def is_dsn(msg: Message) -> bool:
    return (msg.get_content_type() == "multipart/report"
            and (_param(msg, "report-type") or "").lower() == "delivery-status")


def report_type(msg: Message) -> str | None:
    if msg.get_content_type() != "multipart/report":
        return None
    return (_param(msg, "report-type") or "").lower() or None


def _param(msg: Message, name: str) -> str | None:
    try:
        value = msg.get_param(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _xtext(value: str) -> str:
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


def _field(block: Message, name: str) -> str | None:
    value = mime.raw_header(block, name)
    return " ".join(value.split()) if value else None


def _strip_type(value: str | None) -> str | None:
    """`rfc822; user@example.com` → `user@example.com`; `smtp; 550 …` → `550 …`."""
    if not value:
        return None
    _, sep, rest = value.partition(";")
    return (rest if sep else value).strip() or None


def _returned(headers: Message) -> tuple[str | None, str | None]:
    """The returned mail's Message-ID and its X-Switchboard value."""
    ids = mime.message_ids(mime.raw_header(headers, "message-id"))
    own = mime.raw_header(headers, OWN_HEADER)
    return (ids[0] if ids else None), (" ".join(own.split()) if own else None)


def parse(msg: Message) -> Report:
    blocks: list[Message] = []
    original: str | None = None
    own: str | None = None
    envelope_id: str | None = None
    for _path, part in mime.leaves(msg):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks.extend(b for b in payload if isinstance(b, Message))
            elif isinstance(payload, str):
                blocks.extend(mime.parse_headers(chunk) for chunk in re.split(r"\n\s*\n",
                              payload.replace("\r\n", "\n")) if chunk.strip())
        elif ctype in ("message/rfc822", "message/global") and original is None:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                original, own = _returned(inner[0])
        elif ctype in ("text/rfc822-headers", "message/global-headers") and original is None:
            original, own = _returned(mime.parse_headers(mime.part_text(part)))
    recipients = []
    for block in blocks:
        if envelope_id is None and _field(block, "original-envelope-id"):
            envelope_id = _xtext(_field(block, "original-envelope-id") or "")
        action = (_field(block, "action") or "").lower()
        if not action:
            continue
        address = _strip_type(_field(block, "final-recipient")
                              or _field(block, "original-recipient")) or ""
        recipients.append(Recipient(address, action.split()[0], _field(block, "status"),
                                    _strip_type(_field(block, "diagnostic-code"))))
    if original is None and envelope_id:
        ids = mime.message_ids(envelope_id)
        original = ids[0] if ids else None
    return Report(original, tuple(recipients), own)
