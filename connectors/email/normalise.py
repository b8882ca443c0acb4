"""One mail (its raw RFC 5322 bytes) → `InboundMessage` | `DeliveryReport` | `Ignored`.

Pure: no I/O. The payload is the exact bytes the IMAP server returned for `BODY.PEEK[]`.
`dispatch_key` names the kind of mail:

- `own`: carries our `X-Switchboard` header (a reply we sent, come back into the folder) or,
  in `normalise` where the account is known, is From our own address → `Ignored("own message")`;
- `bounce`: a DSN, `multipart/report; report-type=delivery-status` (RFC 3464) →
  `DeliveryReport` naming the Message-ID of our reply that failed;
- `auto_reply`: `Auto-Submitted` other than `no` (RFC 3834 §5), `X-Autoreply`,
  `X-Autorespond`, `Precedence: auto_reply`, a read receipt (RFC 8098 MDN), a note from
  MAILER-DAEMON → `Ignored`, so two robots never answer each other;
- `mailing_list`: `List-Id` / `List-Unsubscribe` (RFC 2919, RFC 2369), `Precedence: list|bulk|
  junk` → `Ignored`;
- `message`: a customer's mail → `InboundMessage`;
- None: a `multipart/report` of another type (an abuse report, TLS report) → `Ignored`.

Threading (https://www.rfc-editor.org/rfc/rfc5322#section-3.6.4): the thread key is the root
of `References` (its first id), else `In-Reply-To`, else the mail's own Message-ID; every id of
References, In-Reply-To and Message-ID is a thread alias, so a mail joins the conversation that
holds any of them. A mail without Message-ID gets a stable one from a hash of its bytes.

Replies go to the author (`Author.user_id`, the From address) unless the mail names a
different `Reply-To` (a web form sending on a customer's behalf, a shared mailbox): then
`reply_route = {"to": [...]}` says where, and comes back to `send` with the reply.

Attachments: `normalise_with_parts` also returns each attachment's bytes, in the order of
`InboundMessage.attachments`, so the connector can store them (`runtime.store_blob`) and set
`blob_id` before the message reaches the sink; `normalise` itself stays pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any

from connectors.base import AccountContext
from connectors.email import dsn, mime, text
from connectors.email.mime import UnreadableMail
from inbox.models import (
    AccountId,
    Attachment,
    Author,
    DeliveryReport,
    Ignored,
    InboundEvent,
    InboundMessage,
)

PLATFORM = "email"
OWN_HEADER = dsn.OWN_HEADER
SYNTHETIC_DOMAIN = "synthetic.switchboard.invalid"
# Our Message-IDs are `sb.<our message id>.<random>@<our domain>` (connectors/email/render.py),
# so a bounce that returns only the Message-ID (or the ENVID) still names our reply.
_OUR_ID = re.compile(r"^sb\.([0-9A-Za-z_-]{1,64})\.[0-9A-Za-z]{4,64}@[^@\s]+$")
_OWN_VALUE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RAW_HEADERS = ("from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
                "in-reply-to", "references", "content-type", "content-language", "user-agent",
                "x-mailer")
_SKIPPED_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature",
                  "application/pgp-signature"}

__all__ = ["HANDLERS", "PLATFORM", "UnreadableMail", "dispatch_key", "normalise",
           "normalise_with_parts", "our_message_id"]

Result = tuple[InboundEvent | Ignored, list[bytes]]
Handler = Callable[[EmailMessage, bytes, AccountContext], Result]


# ----------------------------------------------------------------------------- classification


def our_message_id(message_id: str | None, own_header: str | None = None) -> str | None:
    """Our own id of a reply, from the Message-ID we gave it (`sb.<id>.<random>@domain`), else
    from the `X-Switchboard` header the returned mail carried; None if neither is ours."""
    match = _OUR_ID.match((message_id or "").strip().strip("<>"))
    if match:
        return match.group(1)
    value = (own_header or "").strip()
    return value if _OWN_VALUE.match(value) else None


def _own_address(account: AccountContext | None) -> str | None:
    if account is None:
        return None
    value = account.options.get("address")
    return str(value).strip().lower() if value else None


def _auto_reason(msg: Message) -> str | None:
    auto = mime.raw_header(msg, "auto-submitted")
    if auto is not None:
        keyword = " ".join(auto.split()).split(";")[0].split("(")[0].strip().lower()
        if keyword and keyword != "no":
            return f"Auto-Submitted: {' '.join(auto.split())}"
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        value = mime.raw_header(msg, name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name}: {' '.join(value.split())[:80]}"
    precedence = (mime.raw_header(msg, "precedence") or "").strip().lower()
    if precedence in ("auto_reply", "auto-reply"):
        return f"Precedence: {precedence}"
    sender = mime.first_address(msg, "from")
    if sender and sender.address.split("@")[0].lower() in ("mailer-daemon", "postmaster"):
        return f"a mail system notice from {sender.address}"
    return None


def _list_reason(msg: Message) -> str | None:
    for name in ("list-id", "list-unsubscribe", "x-mailing-list"):
        value = mime.raw_header(msg, name)
        if value is not None:
            return f"{name}: {' '.join(value.split())[:120]}"
    precedence = (mime.raw_header(msg, "precedence") or "").strip().lower()
    if precedence in ("list", "bulk", "junk"):
        return f"Precedence: {precedence}"
    return None


def _classify(msg: Message, own: str | None) -> str | None:
    if mime.raw_header(msg, OWN_HEADER) is not None:
        return "own"
    if own is not None:
        sender = mime.first_address(msg, "from")
        if sender is not None and sender.address.lower() == own:
            return "own"
    report = dsn.report_type(msg)
    if report == "delivery-status":
        return "bounce"
    if report == "disposition-notification":
        return "auto_reply"
    if report is not None:
        return None
    if _auto_reason(msg):
        return "auto_reply"
    if _list_reason(msg):
        return "mailing_list"
    return "message"


def dispatch_key(payload: Any) -> str | None:
    """The kind of mail (a key of HANDLERS), or None for a report type we do not know. Without
    the account, "own" is recognised by our header only (From is compared in `normalise`)."""
    return _classify(mime.parse(payload), None)


# ----------------------------------------------------------------------------- handlers


def _own(msg: EmailMessage, raw: bytes, account: AccountContext) -> Result:
    return Ignored("own message"), []


def _auto_reply(msg: EmailMessage, raw: bytes, account: AccountContext) -> Result:
    if dsn.report_type(msg) == "disposition-notification":
        return Ignored("read receipt (disposition notification)"), []
    return Ignored(f"auto-reply ({_auto_reason(msg)})"), []


def _mailing_list(msg: EmailMessage, raw: bytes, account: AccountContext) -> Result:
    return Ignored(f"mailing list ({_list_reason(msg)})"), []


def _bounce(msg: EmailMessage, raw: bytes, account: AccountContext) -> Result:
    report = dsn.parse(msg)
    if not report.failed:
        actions = sorted({r.action for r in report.recipients}) or ["no recipient status"]
        return Ignored(f"delivery report: {', '.join(actions)}"), []
    if report.original_message_id is None:
        return Ignored("bounce without the Message-ID of the returned mail"), []
    at = mime.header_date(mime.raw_header(msg, "date"))
    return DeliveryReport(account_id=AccountId(account.id), platform=PLATFORM,
                          outbound_external_id=report.original_message_id,
                          reason=report.reason(), code="bounced", at=at,
                          message_id=our_message_id(report.original_message_id,
                                                    report.original_own_header)), []


def _locale(msg: Message) -> str | None:
    value = mime.raw_header(msg, "content-language") or mime.raw_header(msg, "x-coremail-locale")
    if not value:
        return None
    tag = value.split(",")[0].strip().replace("_", "-")
    return tag[:35] or None


def _body(msg: EmailMessage) -> tuple[Message | None, Message | None]:
    found: list[Message | None] = []
    for kind in ("plain", "html"):
        try:
            found.append(msg.get_body(preferencelist=(kind,)))
        except Exception:
            found.append(None)
    return found[0], found[1]


def _attachments(msg: EmailMessage, chosen: tuple[Message | None, ...], hint: str | None,
                 shown: set[str]) -> tuple[list[Attachment], list[bytes], list[str],
                                            dict[str, int]]:
    """Every part but the chosen bodies. An image is inline when it has a Content-ID and is
    not marked as an attachment, or when the HTML body shows it whatever its disposition
    (`shown`: Outlook and Python's own `add_related` mark embedded images `attachment`)."""
    attachments: list[Attachment] = []
    blobs: list[bytes] = []
    more_text: list[str] = []
    content_ids: dict[str, int] = {}
    for path, part in mime.leaves(msg):
        if any(part is c for c in chosen if c is not None):
            continue
        ctype = part.get_content_type()
        disposition = mime.disposition(part)
        name = mime.filename(part, hint)
        if ctype in _SKIPPED_TYPES:
            continue
        if ctype in ("text/plain", "text/html") and name is None and disposition != "attachment":
            if ctype == "text/plain":
                more_text.append(mime.part_text(part))
            continue
        data = mime.part_bytes(part)
        cid = mime.content_id(part)
        if name is None:
            name = "message.eml" if ctype == "message/rfc822" else f"part-{path}"
        inline = cid is not None and (disposition != "attachment" or cid.lower() in shown)
        if cid is not None:
            content_ids.setdefault(cid, len(attachments))
            content_ids.setdefault(cid.lower(), len(attachments))
        attachments.append(Attachment(
            type="photo" if part.get_content_maintype() == "image" else "document",
            file_id=path, name=name, size=len(data), mime=ctype, inline=inline,
            extra={"content_id": cid} if cid else {}))
        blobs.append(data)
    return attachments, blobs, more_text, content_ids


def _raw(msg: Message, raw: bytes, hint: str | None, date_missing: bool) -> dict[str, Any]:
    headers = {name: mime.header_text(msg, name, hint) for name in _RAW_HEADERS}
    doc: dict[str, Any] = {"headers": {k: v[:2000] for k, v in headers.items() if v is not None},
                           "size": len(raw),
                           "sha256": hashlib.sha256(raw).hexdigest()}
    if date_missing:
        doc["date_missing"] = True
    return doc


def _message(msg: EmailMessage, raw: bytes, account: AccountContext) -> Result:
    hint = mime.body_charset_hint(msg)
    sender = mime.first_address(msg, "from", "sender", "reply-to", hint=hint)
    if sender is None:
        raise UnreadableMail("the mail names no sender address (From, Sender, Reply-To)")
    own_ids = mime.message_ids(mime.raw_header(msg, "message-id"))
    message_id = own_ids[0] if own_ids else (
        f"{hashlib.sha256(raw).hexdigest()[:40]}@{SYNTHETIC_DOMAIN}")
    references = mime.message_ids(" ".join(mime.raw_headers(msg, "references")))
    in_reply_to = mime.message_ids(mime.raw_header(msg, "in-reply-to"))
    thread_key = (references or in_reply_to or [message_id])[0]
    aliases = list(dict.fromkeys([*references, *in_reply_to, message_id]))
    parent = in_reply_to[0] if in_reply_to else (references[-1] if references else None)

    plain_part, html_part = _body(msg)
    plain = mime.part_text(plain_part) if plain_part is not None else ""
    markup = mime.part_text(html_part) if html_part is not None else None
    attachments, blobs, more_text, content_ids = _attachments(
        msg, (plain_part, html_part), hint, text.referenced_cids(markup))
    if plain.strip():
        full = text.tidy("\n\n".join([plain, *more_text]))
    else:
        full = text.html_to_text(markup) if markup else text.tidy("\n\n".join(more_text))
    folded = text.fold(full)
    html = text.sanitise_html(markup, content_ids) if markup else None

    reply_to = [a.address for a in mime.addresses(msg, "reply-to", hint)]
    route = ({"to": reply_to} if reply_to and [a.lower() for a in reply_to] != [
        sender.address.lower()] else None)
    date = mime.header_date(mime.raw_header(msg, "date")) or mime.received_date(msg)
    subject = text.strip_subject_prefixes(mime.header_text(msg, "subject", hint))
    result = InboundMessage(
        account_id=AccountId(account.id), platform=PLATFORM, external_id=message_id,
        thread_key=thread_key, kind="dm",
        author=Author(user_id=sender.address.lower(), name=sender.name or sender.address,
                      handle=sender.address, locale=_locale(msg)),
        text=folded, platform_ts=date or _EPOCH, attachments=tuple(attachments),
        reply_to=parent, thread_title=subject or None,
        raw=_raw(msg, raw, hint, date is None), thread_aliases=tuple(aliases),
        html=html or None, full_text=full if full != folded else None, reply_route=route)
    return result, blobs


HANDLERS: Mapping[str, Handler] = {
    "message": _message,
    "auto_reply": _auto_reply,
    "bounce": _bounce,
    "mailing_list": _mailing_list,
    "own": _own,
}


def normalise_with_parts(payload: Any, account: AccountContext) -> Result:
    """`normalise`, plus the bytes of each attachment in the order of `attachments`."""
    msg = mime.parse(payload)
    kind = _classify(msg, _own_address(account))
    if kind is None:
        return Ignored(f"report we do not handle ({dsn.report_type(msg)})"), []
    return HANDLERS[kind](msg, bytes(payload), account)


def normalise(payload: Any, account: AccountContext) -> InboundEvent | Ignored:
    return normalise_with_parts(payload, account)[0]
