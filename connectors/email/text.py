"""Mail bodies as the inbox shows them: HTML to text, quoted history folded, HTML sanitised.

- `html_to_text`: block structure kept as line breaks, `<blockquote>` as `> ` lines (so Gmail
  and Apple Mail HTML quotes fold like plain-text quotes), scripts and styles dropped.
- `fold`: the customer's new words without the quoted history and signature. Quoted (`>`)
  lines and the attribution line above them go wherever they are (top-, bottom- and
  interleaved posting all occur; Coremail webmail quotes *above* the reply); then
  mail-parser-reply (https://github.com/alfonsrv/mail-parser-reply, MIT) cuts at the headers
  clients put above the history ("From: … Sent: …", "发件人: …", "-----Original Message-----")
  and drops signatures; a few Chinese client separators it does not know are cut first.
- `sanitise_html`: nh3 (ammonia) with an allow-list; `cid:` references to the mail's own
  parts become `attachment:<n>` (n = the index in the message's attachments) for the host to
  point at its attachment route; anything else that is not http(s)/mailto/tel is dropped.
- `strip_subject_prefixes`: "Re:", "Fwd:", "回复：", "答复:", "转发:"… (any number, any case).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import unquote

import nh3
from mailparser_reply import EmailMessage as ReplyMessage

_BLOCK = {"p", "div", "section", "article", "header", "footer", "table", "tr", "ul", "ol",
          "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "address", "center",
          "form", "fieldset", "figure", "figcaption", "main", "nav", "aside", "blockquote"}
_SKIP = {"script", "style", "head", "title", "template", "noscript", "object", "iframe", "svg"}
_REPLY_LANGUAGES = ["zh", "ja", "ko", "en", "de", "fr", "es"]
MAX_FOLD_CHARS = 20_000

# Attribution lines above a quoted block, in the shapes mail clients write them.
_ATTRIBUTION = re.compile(
    r"(wrote|writes|a écrit|schrieb|escribió|ha scritto|napisał|skrev|schreef)\s*:\s*$"
    r"|写道\s*[:：]\s*$|寫道\s*[:：]\s*$|のメッセージ\s*[:：]?\s*$|님이 작성\s*[:：]?\s*$"
    r"|^\s*(on|at|在|於|于)\s.{4,200}[,，]\s*.{1,200}[:：]\s*$",
    re.IGNORECASE)
# Separators above a forwarded or quoted history that mail-parser-reply does not know.
_CUT = re.compile(
    r"^\s*-{4,}\s*(原始邮件|原始郵件|Original|邮件原件|郵件原件|转发邮件信息|Forwarded message)"
    r"[^\n]*$"
    r"|^\s*(发件人|寄件者|發件人|From)\s*[:：].*\n\s*(发送时间|寄件日期|發送時間|日期|Date|Sent)\s*[:：]",
    re.IGNORECASE | re.MULTILINE)

_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?"
    r"(?:re|fw|fwd|aw|wg|sv|vs|antw|tr|rif|rv|r|回复|答复|回覆|答覆|转发|轉寄|轉發|转寄|自动回复|"
    r"自动答复|自動回覆)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*",
    re.IGNORECASE)


def strip_subject_prefixes(subject: str | None) -> str:
    text = " ".join((subject or "").split())
    for _ in range(20):
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return text.strip()


_REPLY = re.compile(r"^\s*(?:re|aw|sv|antw|rv|回复|答复|回覆|答覆)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]",
                    re.IGNORECASE)


def has_reply_prefix(subject: str) -> bool:
    """Whether a subject already says it is a reply (so "Re: " is not added twice)."""
    return _REPLY.match(subject) is not None


# ----------------------------------------------------------------------------- HTML → text


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.tail = ""  # the last characters written, so nothing re-joins `out` (linear time)
        self.skip = 0
        self.quote = 0
        self.pre = 0
        self.href: str | None = None
        self.link_text: list[str] = []

    def _emit(self, text: str) -> None:
        if text:
            self.out.append(text)
            self.tail = (self.tail + text)[-2:]

    def _newline(self, count: int = 1) -> None:
        have = len(self.tail) - len(self.tail.rstrip("\n"))
        if self.out and have < count:
            self._emit("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self._emit("\n")
        elif tag == "li":
            self._newline()
            self._emit("• ")
        elif tag in ("td", "th"):
            self._emit(" ")
        elif tag == "hr":
            self._newline()
            self._emit("----------\n")
        elif tag in _BLOCK:
            self._newline(2 if tag == "p" else 1)
            if tag == "blockquote":
                self.quote += 1
            elif tag == "pre":
                self.pre += 1
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "a":
            label = "".join(self.link_text).strip()
            href = self.href or ""
            if href.startswith(("http://", "https://")) and href.rstrip("/") not in (
                    label.rstrip("/"), f"http://{label}", f"https://{label}"):
                self._emit(f" <{href}>")
            self.href = None
        elif tag in _BLOCK:
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._newline(2 if tag == "p" else 1)

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = data.replace("\xa0", " ")
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f]+", " ", text)
            if not self.out or self.tail.endswith(("\n", " ")):
                text = text.lstrip(" ")
        if self.href is not None:
            self.link_text.append(text)
        if self.quote and text:
            text = text.replace("\n", "\n" + "> " * self.quote)
            if not self.out or self.tail.endswith("\n"):
                text = "> " * self.quote + text
        self._emit(text)


def html_to_text(markup: str) -> str:
    writer = _TextWriter()
    try:
        writer.feed(markup)
        writer.close()
    except Exception:  # HTMLParser is lenient; this guards against pathological input
        return tidy(html.unescape(re.sub(r"<[^>]*>", " ", markup)))
    return tidy("".join(writer.out))


def tidy(text: str) -> str:
    """Trailing spaces off, at most one blank line in a row, no blank lines at the ends."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


# ----------------------------------------------------------------------------- folding


def _drop_quotes(text: str) -> str:
    lines = text.split("\n")
    keep: list[str] = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        if _ATTRIBUTION.search(line):
            following = next((n for n in lines[index + 1:index + 50] if n.strip()), None)
            if following is None or following.lstrip().startswith(">"):
                continue
        keep.append(line)
    return "\n".join(keep)


def fold(text: str) -> str:
    """The newest part of a reply: no quoted history, no signature (see the module doc)."""
    body = tidy(text)
    if not body:
        return ""
    unquoted = _drop_quotes(body)
    cut = _CUT.search(unquoted)
    if cut is not None and unquoted[:cut.start()].strip():
        unquoted = unquoted[:cut.start()]
    if len(unquoted) > MAX_FOLD_CHARS:  # the newest words are at the top; keep it fast
        unquoted = unquoted[:MAX_FOLD_CHARS]
    try:
        parsed = ReplyMessage(text=unquoted, languages=list(_REPLY_LANGUAGES),
                              keep_hyphen_lists=True).read()
        newest = parsed.replies[0].body if parsed.replies else unquoted
    except Exception:
        newest = unquoted
    newest = tidy(newest)
    return newest or tidy(unquoted) or body


# ----------------------------------------------------------------------------- sanitising

_CID = re.compile(r"""(\s(?:src|background)\s*=\s*)(["']?)cid:([^"'\s>]+)\2""", re.IGNORECASE)
_STYLES = {"color", "background-color", "font-weight", "font-style", "text-decoration",
           "text-align", "font-size"}


def _attributes() -> dict[str, set[str]]:
    attributes = {tag: set(values) for tag, values in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag in ("p", "div", "span", "td", "th", "table", "font", "b", "i", "u", "li"):
        attributes.setdefault(tag, set()).add("style")
    attributes.setdefault("a", set()).add("title")
    return attributes


_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
_ATTRS = _attributes()


def referenced_cids(markup: str | None) -> set[str]:
    """The Content-IDs an HTML body shows as images (`src="cid:…"`), lower-cased."""
    found: set[str] = set()
    for match in _CID.finditer(markup or ""):
        found.update({match.group(3).lower(), unquote(match.group(3)).lower()})
    return found


def sanitise_html(markup: str, content_ids: Mapping[str, int]) -> str:
    """Safe HTML for display. `content_ids` maps a part's Content-ID to its attachment index."""

    def rewrite(match: re.Match[str]) -> str:
        wanted = match.group(3)
        for candidate in (wanted, unquote(wanted)):
            index = content_ids.get(candidate)
            if index is None:
                index = content_ids.get(candidate.lower())
            if index is not None:
                return f'{match.group(1)}"attachment:{index}"'
        return f'{match.group(1)}""'

    return nh3.clean(_CID.sub(rewrite, markup), tags=_TAGS, attributes=_ATTRS,
                     url_schemes={"http", "https", "mailto", "tel", "attachment"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True,
                     clean_content_tags={"script", "style", "title", "head"},
                     filter_style_properties=_STYLES,
                     set_tag_attribute_values={"a": {"target": "_blank"}}).strip()
