"""Reading one RFC 5322 / MIME message robustly: headers, charsets, addresses, ids, parts.

Pure functions over the raw bytes of a mail. The standard library's parser
(`email.policy.default`) does the MIME structure; what it does not do well for the mail that
Chinese support teams receive is done here:

- charset labels are mapped to the codec that actually decodes the bytes: GB2312-labelled
  content is nearly always GBK or GB18030 in practice (Outlook, Foxmail and webmail send GBK
  characters under the GB2312 label), so every GB-family label decodes as GB18030, its
  superset; Big5 as Big5-HKSCS, KS C 5601 as CP949, Shift_JIS as CP932, ISO-8859-1 as
  Windows-1252 (the WHATWG Encoding Standard, https://encoding.spec.whatwg.org/#names-and-labels,
  maps these labels the same way, because senders mislabel);
- header values with raw 8-bit bytes (no RFC 2047 encoded words, common in Chinese mail) are
  decoded with the part's charset as a hint, then UTF-8, then GB18030;
- RFC 2047 encoded words are decoded per word with the same charset mapping
  (https://www.rfc-editor.org/rfc/rfc2047).
"""

from __future__ import annotations

import codecs
import email.header
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser

MAX_MAIL_BYTES = 64 * 1024 * 1024
MAX_HEADER_CHARS = 16 * 1024
MAX_PARTS = 500

_CHARSET_ALIASES: dict[str, str] = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "ms936": "gb18030", "euc-cn": "gb18030", "csgb2312": "gb18030", "gb_2312-80": "gb18030",
    "chinese": "gb18030", "x-euc-cn": "gb18030", "hz-gb-2312": "hz",
    "big5": "big5hkscs", "big-5": "big5hkscs", "x-x-big5": "big5hkscs", "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs", "big5-hkscs": "big5hkscs",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949", "korean": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "windows-31j": "cp932", "iso-2022-jp": "iso2022_jp_ext", "csiso2022jp": "iso2022_jp_ext",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
    "ascii": "cp1252", "ansi_x3.4-1968": "cp1252", "iso-8859-9": "cp1254",
    "tis-620": "cp874", "iso-8859-11": "cp874", "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7",
}
_FALLBACKS = ("utf-8", "gb18030", "cp1252")
_MSGID = re.compile(r"<([^<>\s]{1,990})>")
_BARE_MSGID = re.compile(r"^[^<>\s@]{1,900}@[^<>\s@]{1,255}$")


class UnreadableMail(ValueError):
    """The bytes are not a mail we can read (not bytes, empty, too big, no sender)."""


# ----------------------------------------------------------------------------- charsets


def codec_for(label: str | None) -> str | None:
    """The Python codec for a MIME charset label, after the aliases above; None if unknown."""
    if not label:
        return None
    name = label.strip().strip('"\'').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a label holding a NUL
        return None


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Text from bytes: the labelled charset if it decodes cleanly, else UTF-8, GB18030,
    Windows-1252 (GB18030 before Latin-1: the users are Chinese support teams, and unlabelled
    8-bit mail to them is far more often GBK than Latin-1); the labelled charset with
    replacement characters as the last resort."""
    codec = codec_for(label)
    # An ASCII or Latin-1 label on 8-bit bytes is usually UTF-8 sent by a careless client;
    # strict UTF-8 almost never accepts real Latin-1 text, so trying it first is safe.
    first = ("utf-8", codec) if codec in (None, "cp1252", "ascii") else (codec,)
    for name in (*first, *_FALLBACKS):
        if name is None:
            continue
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(codec or "utf-8", errors="replace")


# ----------------------------------------------------------------------------- parsing


def parse(raw: object) -> EmailMessage:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise UnreadableMail(f"a mail is bytes, got {type(raw).__name__}")
    data = bytes(raw)
    if not data.strip():
        raise UnreadableMail("the mail is empty")
    if len(data) > MAX_MAIL_BYTES:
        raise UnreadableMail(f"the mail is larger than {MAX_MAIL_BYTES} bytes")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
    except Exception as exc:  # the parser is lenient; this is a last-resort guard
        raise UnreadableMail(f"the mail cannot be parsed: {exc}") from exc
    assert isinstance(msg, EmailMessage)
    if not any(True for _ in msg.raw_items()):
        raise UnreadableMail("the mail has no header fields")
    return msg


def raw_header(msg: Message, name: str) -> str | None:
    """The first value of a header exactly as sent (folded, encoded words, 8-bit bytes as
    surrogate escapes): the policy's own header parsing is avoided because it can raise on
    hostile input."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)[:MAX_HEADER_CHARS]
    return None


def raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [str(v)[:MAX_HEADER_CHARS] for k, v in msg.raw_items() if k.lower() == wanted]


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]+", " ", value).replace("\r", "").replace("\n", " ")


def _undo_escapes(value: str, hint: str | None) -> str:
    """Header bytes outside ASCII arrive as surrogate escapes: decode them as text."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("ascii", "surrogateescape"), hint)


def decode_words(value: str, hint: str | None = None) -> str:
    """A header value as text: 8-bit bytes decoded, RFC 2047 words decoded, unfolded."""
    text = _unfold(_undo_escapes(value, hint))
    if "=?" not in text:
        return text.strip()
    try:
        chunks = email.header.decode_header(text)
    except Exception:
        return text.strip()
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("raw-unicode-escape", errors="replace"))
        else:
            out.append(decode_bytes(chunk, charset))
    return "".join(out).strip()


def header_text(msg: Message, name: str, hint: str | None = None) -> str | None:
    value = raw_header(msg, name)
    return None if value is None else decode_words(value, hint)


def body_charset_hint(msg: Message) -> str | None:
    """The charset of the first text part: the best guess for raw 8-bit header bytes."""
    for _path, part in leaves(msg):
        if part.get_content_maintype() == "text":
            charset = _param(part, "charset")
            if charset:
                return charset
    return None


def _param(part: Message, name: str) -> str | None:
    try:
        value = part.get_param(name)
    except Exception:
        return None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return str(value) if value else None


# ----------------------------------------------------------------------------- addresses, ids


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str


def addresses(msg: Message, name: str, hint: str | None = None) -> list[Address]:
    """Every address of the header fields `name`, display names decoded. Addresses are parsed
    before the names are decoded, so a decoded name with a comma cannot split an address."""
    values = [_unfold(_undo_escapes(v, hint)) for v in raw_headers(msg, name)]
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:
        return []
    found: list[Address] = []
    for display, addr in pairs:
        addr = addr.strip()
        if "@" not in addr or len(addr) > 320 or any(c.isspace() for c in addr):
            continue
        found.append(Address(decode_words(display, hint) if display else "", addr))
    return found


def first_address(msg: Message, *names: str, hint: str | None = None) -> Address | None:
    for name in names:
        found = addresses(msg, name, hint)
        if found:
            return found[0]
    return None


def message_ids(value: str | None) -> list[str]:
    """Message-IDs of a References / In-Reply-To / Message-ID value, without `<>`, in order,
    each once. A lone id without brackets (some generators write one) is accepted too."""
    if not value:
        return []
    text = _unfold(value)
    ids = _MSGID.findall(text)
    if not ids:
        bare = text.strip()
        ids = [bare] if _BARE_MSGID.match(bare) else []
    seen: dict[str, None] = {}
    for one in ids:
        seen.setdefault(one.strip(), None)
    return [i for i in seen if i]


def header_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; None when missing or absurd."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(_unfold(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1970 <= parsed.year <= 2200:
        return None
    return parsed.astimezone(UTC)


def received_date(msg: Message) -> datetime | None:
    """The date the first (topmost, i.e. last) relay stamped: where a mail lacks `Date`."""
    for value in raw_headers(msg, "received"):
        _, _, when = _unfold(value).rpartition(";")
        parsed = header_date(when)
        if parsed is not None:
            return parsed
    return None


def parse_headers(text: str) -> Message:
    """A header block on its own (a DSN's text/rfc822-headers part)."""
    return HeaderParser(policy=policy.compat32).parsestr(text, headersonly=True)


# ----------------------------------------------------------------------------- parts


def leaves(msg: Message) -> Iterator[tuple[str, Message]]:
    """Every non-multipart part with its IMAP section number ("1", "2.1"); a message/rfc822
    part is one leaf (an attached mail is an attachment, not more body)."""
    count = 0

    def walk(part: Message, path: str) -> Iterator[tuple[str, Message]]:
        nonlocal count
        count += 1
        if count > MAX_PARTS:
            return
        if part.get_content_maintype() == "multipart":
            payload = part.get_payload()
            if isinstance(payload, list):
                for index, sub in enumerate(payload, 1):
                    if isinstance(sub, Message):
                        yield from walk(sub, f"{path}.{index}" if path else str(index))
            return
        yield path or "1", part

    yield from walk(msg, "")


def part_bytes(part: Message) -> bytes:
    """A leaf's content with its transfer encoding undone (the whole mail for message/rfc822)."""
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            try:
                return inner.as_bytes(policy=policy.SMTP)
            except Exception:
                return inner.as_string(policy=policy.compat32).encode("utf-8", "replace")
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def part_text(part: Message) -> str:
    """A text part as str, with the charset mapping above (and `<meta charset>` for HTML)."""
    data = part_bytes(part)
    label = _param(part, "charset")
    if label is None and part.get_content_subtype() == "html":
        meta = re.search(rb"""charset=["']?([A-Za-z0-9_:.\-]+)""", data[:4096])
        label = meta.group(1).decode("ascii") if meta else None
    return decode_bytes(data, label).replace("\r\n", "\n").replace("\r", "\n")


def filename(part: Message, hint: str | None) -> str | None:
    """The part's file name: RFC 2231 (standard) or RFC 2047 inside the parameter (what
    Outlook and most Chinese mailers send), from Content-Disposition or Content-Type."""
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        if part.get(header) is None:
            continue
        try:
            value = part.get_param(param, header=header)
        except Exception:  # a malformed parameter list: try the other header
            value = None
        if isinstance(value, tuple):
            value = email.utils.collapse_rfc2231_value(value)
        if value:
            name = decode_words(str(value), hint)
            name = name.replace("/", "_").replace("\\", "_").replace("\x00", "").strip()
            if name:
                return name[:255]
    return None


def disposition(part: Message) -> str | None:
    value = part.get("content-disposition")
    if value is None:
        return None
    return str(value).split(";", 1)[0].strip().lower() or None


def content_id(part: Message) -> str | None:
    ids = message_ids(raw_header(part, "content-id"))
    return ids[0] if ids else None
