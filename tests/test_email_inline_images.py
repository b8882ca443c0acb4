"""Embedded images: which parts are shown inside the HTML body (`inline`, `attachment:<n>`)."""

from __future__ import annotations

from email.message import EmailMessage

from connectors.base import AccountContext
from connectors.email.normalise import normalise_with_parts
from inbox.models import InboundMessage

ACCOUNT = AccountContext(id="acc-email-1", platform="email", name="support", credentials={},
                         mode="imap", options={"address": "support@acme.example"})
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def mail(html: str, *, disposition: str | None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "韩梅梅 <hanmeimei@customer.example>"
    msg["To"] = "support@acme.example"
    msg["Subject"] = "截图"
    msg["Message-ID"] = "<inline-1@customer.example>"
    msg.set_content("见截图。")
    msg.add_alternative(html, subtype="html")
    related = msg.get_payload()[1]
    extra = {"disposition": disposition} if disposition else {}
    related.add_related(PNG, "image", "png", cid="<shot@customer.example>",
                        filename="截图.png", **extra)
    return msg.as_bytes()


def parsed(raw: bytes) -> InboundMessage:
    result, blobs = normalise_with_parts(raw, ACCOUNT)
    assert isinstance(result, InboundMessage) and blobs == [PNG]
    return result


def test_an_image_the_html_shows_is_inline_whatever_its_disposition() -> None:
    """Python's `add_related` and Outlook mark embedded images `attachment`."""
    for disposition in (None, "inline", "attachment"):
        result = parsed(mail('<p><img src="cid:shot@customer.example"></p>',
                             disposition=disposition))
        (image,) = result.attachments
        assert image.inline and image.name == "截图.png"
        assert result.html is not None and 'src="attachment:0"' in result.html


def test_an_image_attachment_the_html_does_not_show_stays_a_file() -> None:
    result = parsed(mail("<p>见附件。</p>", disposition="attachment"))
    (image,) = result.attachments
    assert not image.inline and image.extra == {"content_id": "shot@customer.example"}
