"""Inbound email parsing (integrations/email_inbound.py) and the forwarded bytes
(integrations/email_message.py), on recorded provider payloads and awkward real-world MIME
from tests/payloads/. Plain values: nothing here touches the network or a database."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from dataclasses import replace
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, HeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations import email_message
from integrations.email_inbound import (
    EmailFormatError,
    FormFile,
    InboundEmail,
    decode_text,
    mailgun_signature_valid,
    parse_mailgun,
    parse_mime,
    parse_postmark,
    parse_sendgrid,
)
from integrations.email_message import forwarded
from router.core.mailtext import classification_text
from router.core.masking import mask_cards

PAYLOADS = Path(__file__).parent / "payloads"
ADDED = {
    "X-Switchboard-Category": "admin",
    "X-Switchboard-Destination": "partner",
    "X-Switchboard-Reason": "target",
    "X-Switchboard-Interaction": "42",
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def eml(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return loaded


def form(name: str) -> dict[str, str | FormFile]:
    """A recorded form post as the webhook hands it over: text fields as str (bytes that are
    not UTF-8 kept with surrogateescape), uploads as FormFile."""
    recorded = fixture(name)
    fields: dict[str, str | FormFile] = dict(recorded["fields"])
    for key, value in recorded["fields_base64"].items():
        fields[key] = base64.b64decode(value).decode("utf-8", "surrogateescape")
    for key, upload in recorded["files"].items():
        fields[key] = FormFile(
            upload["filename"], upload["content_type"], base64.b64decode(upload["base64"])
        )
    return fields


def compat(raw: bytes) -> Message:
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def unfolded(items: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(name, re.sub(r"\r?\n(?=[ \t])", "", str(value)).strip()) for name, value in items]


def files(raw: bytes) -> list[tuple[str | None, str, str | None, bytes]]:
    message = message_from_bytes(raw, policy=policy.default)
    found = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() not in ("attachment", "inline"):
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found.append((part.get_filename(), part.get_content_type(), part["Content-ID"], payload))
    return found


# -- real-world MIME ------------------------------------------------------------------------

EXPECTED: dict[str, dict[str, Any]] = {
    "cs_iso-8859-2_qp.eml": {
        "message_id": "6b1f2c3a-0d4e-4a5b-9c8d-7e6f5a4b3c2d@seznam.cz",
        "sender": "jiri.novak@seznam.cz",  # From, not Reply-To
        "subject": "Reklamace objednávky č. 2024001234",
        "references": ("order-2024001234@eshop.example",),
        "recipient": "podpora@eshop.example",
        "text": ["Zboží přišlo poškozené", "4111 1111 1111 1111", "> Platba proběhla v pořádku."],
    },
    "cs_windows-1250_8bit.eml": {
        "message_id": "AM0PR03MB5873C0FFEE1234@AM0PR03MB5873.eurprd03.prod.outlook.com",
        "sender": "petra.svecova@example.cz",
        "subject": "RE: Potvrzení objednávky 2024005678 – změna adresy",
        "references": ("confirm-2024005678@eshop.example", "order-2024005678@eshop.example"),
        "recipient": "objednavky@eshop.example",
        "text": ["nově Šumavská 12", "Petra Švecová", "-----Original Message-----"],
    },
    "ru_koi8-r_base64.eml": {
        "message_id": "1710320400.123456@yandex.ru",
        "sender": "ivan.petrov@yandex.ru",
        "subject": "Где мой заказ 2024009876?",
        "references": (),
        "recipient": "support@eshop.example",
        "text": ["Когда придёт посылка?", "С уважением,"],
    },
    "ru_windows-1251_qp_alternative.eml": {
        "message_id": "000001da7411$5a1b2c30$0e518490$@mail.example.ru",
        "sender": "olga@mail.example.ru",
        "subject": "Наушники и телевизор",
        "references": (),
        "recipient": "support@eshop.example",
        "text": ["Как подключить наушники к телевизору?", "--\nОльга"],
        "not_text": ["<p>"],  # the plain alternative, not the HTML one
    },
    "pl_utf-8_base64_alternative.eml": {
        "message_id": "CAO9Xkz=def456+pl@mail.gmail.com",
        "sender": "krzysztof.wojcik@gmail.com",
        "subject": "Re: Zamówienie nie dotarło",
        "references": ("order-2024004321@eshop.example", "CAO9Xkz=abc123@mail.gmail.com"),
        "recipient": "sklep@eshop.example",
        "text": ["zamówienie nr 2024004321 nie dotarło", "napisał(a):"],
        "not_text": ["gmail_quote"],
    },
    "nested_mixed_related_alternative.eml": {
        "message_id": "a1b2c3d4-nested@example.cz",
        "sender": "martin.dvorak@example.cz",
        "subject": "Poškozený balík – faktura",
        "references": (),
        "recipient": "reklamace@eshop.example",
        "text": ["Platil jsem kartou 4111-1111-1111-1111,", "S pozdravem\nMartin Dvořák"],
        "not_text": ["<html>", "Poznámka", "nemaskovat"],  # no HTML, no attached .txt
    },
    "no_message_id.eml": {
        "message_id": "sha256:" + hashlib.sha256(eml("no_message_id.eml")).hexdigest(),
        "sender": "anna.kowalska@example.pl",
        "subject": "Faktura",
        "references": (),
        "recipient": "sklep@eshop.example",
        "text": ["Prosze o fakture do zamowienia 2024001111."],
    },
    "no_from.eml": {
        "message_id": "no-from-1@lists.example",
        "sender": "",  # no From: neither Sender nor Reply-To is the customer's identity
        "subject": "Kdy doruceni?",
        "references": (),
        "recipient": "podpora@eshop.example",
        "text": ["Kdy prijde zasilka?"],
    },
    "broken_base64_attachment.eml": {
        "message_id": "broken-b64@example.cz",
        "sender": "lukas.horak@example.cz",
        "subject": "Scan dokladu",
        "references": (),
        "recipient": "podpora@eshop.example",
        "text": ["V priloze doklad o platbe kartou 4111111111111111."],
    },
    "html_only.eml": {
        "message_id": "html-only-1@example.cz",
        "sender": "eva.mala@example.cz",  # raw 8-bit UTF-8 display name
        "subject": "Jak nastavit Bluetooth?",
        "references": (),
        "recipient": "produkty@eshop.example",
        "text": [
            "jak nastavím Bluetooth na sluchátkách XM-500?",
            "s telefonem & tabletem",
            "- model: XM-500",
            "Dne 10.03.2024 v 9:00 Eshop napsal(a):\n\n> Dobrý den, štastné nakupování.",
        ],
        "not_text": ["<div>", "alert(1)", "ignored", "color:red", "&nbsp;"],
    },
    "malformed.eml": {
        "message_id": "broken-id-without-brackets@example.cz",
        "sender": "karel@example.cz",
        "subject": "=?utf-8?B?invalid!!base64?=café Stav objednávky",
        "references": ("a@example.cz", "b@example.cz"),  # in order, de-duplicated
        "recipient": "podpora@eshop.example",
        "text": ["Kde je zásilka?"],  # unknown charset label: UTF-8 is tried
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_world_mime_is_read_field_by_field(name: str) -> None:
    raw = eml(name)
    email = parse_mime(raw)
    expected = EXPECTED[name]
    assert email.raw == raw
    assert email.message_id == expected["message_id"]
    assert email.sender == expected["sender"]
    assert email.subject == expected["subject"]
    assert email.references == expected["references"]
    assert email.recipient == expected["recipient"]
    for snippet in expected["text"]:
        assert snippet in email.text, snippet
    for snippet in expected.get("not_text", []):
        assert snippet not in email.text, snippet
    assert "\r" not in email.text


def test_what_the_classifier_reads_of_a_czech_reply() -> None:
    email = parse_mime(eml("cs_iso-8859-2_qp.eml"))
    assert classification_text(email.subject, email.text) == (
        "Reklamace objednávky č. 2024001234\n\n"
        "Dobrý den,\n\n"
        "reklamuji objednávku č. 2024001234. Zboží přišlo poškozené a platba kartou\n"
        "4111 1111 1111 1111 mi byla stržena dvakrát. Prosím o vrácení peněz."
    )


def test_a_message_without_message_id_gets_the_hash_of_its_raw_bytes() -> None:
    raw = eml("no_message_id.eml")
    assert parse_mime(raw).message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    other = raw.replace(b"2024001111", b"2024001112")
    assert parse_mime(other).message_id != parse_mime(raw).message_id


@pytest.mark.parametrize(
    ("from_header", "sender"),
    [
        ("From: undisclosed-recipients:;", ""),
        ("From: MAILER-DAEMON", ""),
        ("From: ", ""),
        ('From: "Novák, Jan" <Jan.Novak@Example.CZ>', "jan.novak@example.cz"),
        ("From: jan@example.cz (Jan Novák)", "jan@example.cz"),
        ("From: =?utf-8?q?Jan_Nov=C3=A1k?= <jan@example.cz>, other@example.cz", "jan@example.cz"),
        ('From: "Broken <jan@example.cz>', "jan@example.cz"),
    ],
)
def test_the_sender_is_the_first_usable_from_address(from_header: str, sender: str) -> None:
    raw = f"{from_header}\nReply-To: reply@example.cz\nSubject: x\n\nbody\n".encode()
    assert parse_mime(raw).sender == sender


def test_an_mbox_envelope_line_is_not_part_of_the_message() -> None:
    raw = eml("no_from.eml")
    email = parse_mime(b"From bounce@example.cz Tue Mar 12 10:00:00 2024\n" + raw)
    assert email.raw == raw


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x01 this is not an email",
        b'{"From": "jan@example.cz"}',
        b"\r\nonly a body",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"From jan@example.cz Tue Mar 12 10:00:00 2024\n",
    ],
)
def test_a_body_without_a_header_block_is_not_mime(body: bytes) -> None:
    with pytest.raises(EmailFormatError):
        parse_mime(body)


def test_parse_mime_wants_bytes() -> None:
    with pytest.raises(EmailFormatError):
        parse_mime("Subject: x\n\ny")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Příliš žluťoučký".encode("iso-8859-2"), "ISO-8859-2", "Příliš žluťoučký"),
        ("Příliš žluťoučký".encode("cp1250"), "windows-1250", "Příliš žluťoučký"),
        ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
        ("Привет".encode("cp1251"), "windows-1251", "Привет"),
        ("Zażółć".encode(), "utf8", "Zażółć"),
        ("„quotes“".encode("cp1252"), "iso-8859-1", "„quotes“"),  # mislabelled windows-1252
        ("žluť".encode(), "x-unknown", "žluť"),
        ("žluť".encode("cp1250"), None, "žluť"),  # unlabelled, not UTF-8: windows-1250
        (b"caf\xff", "utf-8", "caf\ufffd"),
    ],
)
def test_text_is_decoded_from_its_declared_charset(
    data: bytes, charset: str | None, text: str
) -> None:
    assert decode_text(data, charset) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_after_a_header_line_parse_and_forward(tail: bytes) -> None:
    raw = b"Subject: x\r\n" + tail
    email = parse_mime(raw)
    assert isinstance(email, InboundEmail)
    out = forwarded(raw, added_headers=ADDED, mask_cards=True)
    assert out.startswith(b"X-Switchboard-Category: admin\r\n")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_corrupted_multipart_still_parses_and_forwards(data: st.DataObject) -> None:
    raw = bytearray(eml("nested_mixed_related_alternative.eml"))
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(100, len(raw) - 1))
        raw[at : at + data.draw(st.integers(0, 40))] = data.draw(st.binary(max_size=40))
    email = parse_mime(bytes(raw))
    assert email.message_id
    assert forwarded(bytes(raw), added_headers=ADDED, mask_cards=True).endswith(raw[-20:])


def delimiters_by_pattern(raw: bytes, start: int, end: int, boundary: str) -> list[Any]:
    """RFC 2046 §5.1.1 delimiter lines as one regular expression: the reference that
    integrations/email_message.py's scan with bytes.find must agree with."""
    token = re.escape(boundary.encode("utf-8", "surrogateescape"))
    pattern = re.compile(rb"(?<=\n)--" + token + rb"(--)?[ \t]*(?=\r?\n|\Z)")
    return [
        (match.start(), match.end(), bool(match.group(1)))
        for match in pattern.finditer(raw, start, end)
    ]


# pieces a multipart body is made of, delimiters and near-misses among them
_PIECES = st.sampled_from(
    [
        *(b"\n--b=1", b"\n--b=1--", b"--b=1", b"b=1", b"--", b"-"),
        *(b"\n", b"\r\n", b"\r", b" ", b"\t", b"x", b"\xc3\xa9"),
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.data())
def test_delimiter_lines_are_found_as_rfc_2046_defines_them(
    pieces: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(pieces)
    # the body may start anywhere, often just after a newline (the header block's end)
    line_starts = [at + 1 for at in range(len(raw)) if raw[at : at + 1] == b"\n"]
    after_newline = bool(line_starts) and data.draw(st.booleans())
    starts = st.sampled_from(line_starts) if after_newline else st.integers(0, len(raw))
    start = data.draw(starts)
    end = data.draw(st.sampled_from([len(raw), *range(start, len(raw) + 1)]))
    found = list(email_message._delimiters(raw, start, end, "b=1"))
    assert found == delimiters_by_pattern(raw, start, end, "b=1")


# lines of header blocks: fields, continuations, and lines the parser reads another way
_HEADER_LINES = st.sampled_from(
    [
        *(b"Content-Type: text/plain;", b'\tcharset="utf-8"', b" name=a.pdf", b"Subject:"),
        *(b"X-A:  1 ", b"X-A:", b" ", b"\t", b"Subject: \xc3\xa9", b"From a@b.cz", b":x"),
        *(b"Bad Name: 1", b"x", b"", b"Content-Disposition: attachment; filename=a.txt"),
    ]
)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(_HEADER_LINES, max_size=8),
    st.sampled_from([b"\r\n", b"\n"]),
    st.sampled_from([b"", b"\r", b"\n", b"\r\n", b"x"]),
    st.integers(0, 8),
)
def test_header_blocks_are_read_as_the_email_package_reads_them(
    lines: list[bytes], eol: bytes, odd: bytes, at: int
) -> None:
    """Plain blocks, and blocks with one odd piece (a stray line end, no final one)."""
    block = b"".join(line + eol for line in lines)
    for candidate in (block, block[: at * 3] + odd + block[at * 3 :], block[: -len(eol)]):
        ours = email_message._headers(candidate, 0, len(candidate))
        theirs = BytesHeaderParser(policy=compat32).parsebytes(candidate)
        assert ours.items() == theirs.items()
        assert ours.get_unixfrom() == theirs.get_unixfrom()


def test_a_plain_header_block_is_read_without_the_parser() -> None:
    block = b'Content-Type: multipart/mixed;\r\n\tboundary="b=1"\r\nX-A: 1\r\n'
    plain = email_message._plain_headers(block)
    assert plain is not None
    assert (plain.get_content_type(), plain.get_boundary(), plain["x-a"]) == (
        "multipart/mixed",
        "b=1",
        "1",
    )
    assert email_message._plain_headers(b"X-A: 1\nX-B: 2\r\n") is None  # mixed line ends


def test_a_multipart_is_split_at_its_delimiters_whatever_the_line_ends() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b=1\r\n\r\n"
        b"--b=1\r\nA: 1\r\n\r\none\r\n--b=1 \t\nA: 2\n\ntwo\n--b=1x\n--b=1--  \r\nepilogue"
    )
    _, body_start = email_message.split_head(raw)
    parts = email_message._children(raw, body_start, len(raw), "b=1")
    assert [raw[a:b] for a, b in parts] == [b"A: 1\r\n\r\none", b"A: 2\n\ntwo\n--b=1x"]


# -- providers ------------------------------------------------------------------------------


def test_sendgrid_parsed_fields_are_rebuilt_into_the_original_message() -> None:
    recorded = fixture("sendgrid_parsed.json")
    email = parse_sendgrid(form("sendgrid_parsed.json"))
    assert email.message_id == "sg-parsed-1@example.cz"
    assert email.sender == "jiri.novak@example.cz"
    assert email.subject == "Vrácení peněz za objednávku 2024001234"
    assert email.references == ("order-2024001234@eshop.example",)
    assert email.recipient == "podpora@parse.eshop.example"  # the SMTP envelope
    assert email.text.startswith("Dobrý den,\n\nprosím o vrácení peněz")

    # every original header, in order, except the ones describing the old MIME structure
    original = HeaderParser(policy=policy.compat32).parsestr(recorded["fields"]["headers"])
    kept = [
        item
        for item in unfolded(original.items())
        if item[0].lower() not in ("content-type", "mime-version")
    ]
    rebuilt = unfolded(compat(email.raw).items())
    assert rebuilt[: len(kept)] == kept
    assert [name for name, _ in rebuilt[len(kept) :]] == ["MIME-Version", "Content-Type"]

    message = message_from_bytes(email.raw, policy=policy.default)
    assert message["Reply-To"] == "Jiri Novak <jiri@work.example>"
    assert message["DKIM-Signature"].startswith("v=1; a=rsa-sha256;")
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    # the text and HTML bodies keep the bytes and charset SendGrid posted
    for part, field in ((plain, "text"), (html, "html")):
        assert part.get_content_charset() == "iso-8859-2"
        assert part.get_payload(decode=True) == base64.b64decode(
            recorded["fields_base64"][field]
        ).replace(b"\n", b"\r\n")
    assert sorted(files(email.raw), key=str) == sorted(
        [
            ("faktura č. 2024001234.pdf", "application/pdf", None, PDF),
            ("image.png", "image/png", "<ii_ltq1x2y30>", PNG),
        ],
        key=str,
    )
    # the inline image sits with the HTML it belongs to
    related = next(p for p in message.walk() if p.get_content_type() == "multipart/related")
    assert "image/png" in [p.get_content_type() for p in related.iter_parts()]


def test_rebuilding_is_deterministic() -> None:
    assert parse_sendgrid(form("sendgrid_parsed.json")) == parse_sendgrid(
        form("sendgrid_parsed.json")
    )
    assert parse_mailgun(form("mailgun_forward.json")) == parse_mailgun(
        form("mailgun_forward.json")
    )
    assert parse_postmark(fixture("postmark.json")) == parse_postmark(fixture("postmark.json"))


def test_sendgrid_raw_is_the_message_as_posted() -> None:
    fields = form("sendgrid_raw.json")
    email = parse_sendgrid(fields)
    assert email.raw == str(fields["email"]).encode()
    assert email.recipient == "sklep@parse.eshop.example"
    assert email == replace(parse_mime(email.raw), recipient="sklep@parse.eshop.example")
    assert email.message_id == "CAO9Xkz=def456+pl@mail.gmail.com"
    assert email.sender == "krzysztof.wojcik@gmail.com"


def test_sendgrid_raw_email_uploaded_as_a_file_keeps_its_bytes() -> None:
    raw = eml("cs_windows-1250_8bit.eml")  # 8-bit windows-1250: not UTF-8
    email = parse_sendgrid({"email": FormFile("email.eml", "message/rfc822", raw)})
    assert email.raw == raw
    assert "Šumavská" in email.text
    as_text = parse_sendgrid({"email": raw.decode("utf-8", "surrogateescape")})
    assert as_text.raw == raw


def test_mailgun_forward_fields_are_rebuilt_into_the_original_message() -> None:
    recorded = fixture("mailgun_forward.json")
    email = parse_mailgun(form("mailgun_forward.json"))
    assert email.message_id == "CAF=mg-forward-1@mail.gmail.com"
    assert email.sender == "hans.mueller@example.de"  # From, not the envelope 'sender'
    assert email.subject == "Re: Kompatibilität des Ladegeräts"
    assert email.references == ("ticket-77@eshop.example", "ticket-70@eshop.example")
    assert email.recipient == "support@mg.eshop.example"
    assert email.text == recorded["fields"]["body-plain"]

    pairs = [
        (name, value)
        for name, value in json.loads(recorded["fields"]["message-headers"])
        if name.lower() not in ("content-type", "mime-version")
    ]
    rebuilt = unfolded(compat(email.raw).items())
    assert rebuilt[: len(pairs)] == pairs
    message = message_from_bytes(email.raw, policy=policy.default)
    html = message.get_body(("html",))
    assert html is not None and html.get_content() == recorded["fields"]["body-html"]
    assert sorted(files(email.raw), key=str) == sorted(
        [
            ("ladegeraet.png", "image/png", "<ii_mg_photo>", PNG),
            ("Rechnung März.pdf", "application/pdf", None, PDF),
        ],
        key=str,
    )


def test_mailgun_mime_is_the_message_as_posted() -> None:
    fields = form("mailgun_mime.json")
    email = parse_mailgun(fields)
    raw = eml("nested_mixed_related_alternative.eml")
    assert email.raw == raw
    assert email.recipient == "reklamace@mg.eshop.example"
    assert (email.message_id, email.sender, email.subject, email.text) == (
        parse_mime(raw).message_id,
        parse_mime(raw).sender,
        parse_mime(raw).subject,
        parse_mime(raw).text,
    )


def test_mailgun_field_names_are_matched_without_regard_to_case() -> None:
    email = parse_mailgun(
        {
            "From": "Jan <Jan@Example.cz>",
            "Subject": "Ahoj",
            "Body-plain": "text",
            "Recipient": "a@b.cz",
        }
    )
    assert (email.sender, email.subject, email.text, email.recipient) == (
        "jan@example.cz",
        "Ahoj",
        "text",
        "a@b.cz",
    )


def test_postmark_json_is_rebuilt_into_the_original_message() -> None:
    payload = fixture("postmark.json")
    email = parse_postmark(payload)
    assert email.message_id == "CAK=pm-inbound-1@mail.example.sk"  # the header, not MessageID
    assert email.sender == "zaneta.horvathova@example.sk"
    assert email.subject == "Re: Vrátenie tovaru – objednávka 2024002222"
    assert email.references == (
        "shipping-2024002222@eshop.example",
        "order-2024002222@eshop.example",
    )
    assert email.recipient == "podpora@eshop.example"  # OriginalRecipient
    assert email.text == payload["TextBody"]

    message = message_from_bytes(email.raw, policy=policy.default)
    for header in payload["Headers"]:
        if header["Name"].lower() not in ("content-type", "mime-version"):
            assert message[header["Name"]] == header["Value"], header["Name"]
    assert message["From"] == "Žaneta Horváthová <Zaneta.Horvathova@Example.SK>"
    assert message["To"] == "Podpora <ab12cd34ef56+eshop@inbound.postmarkapp.com>"
    assert message["Cc"] == "Ján Horváth <jan.horvath@example.sk>"
    assert message["Reply-To"] == payload["ReplyTo"]
    assert message["Subject"] == payload["Subject"]
    assert message["Date"] == payload["Date"]
    html = message.get_body(("html",))
    assert html is not None and html.get_content() == payload["HtmlBody"]
    found = files(email.raw)
    assert ("štítok.png", "image/png", "<stitok.png@01DA7544.5F3A1B20>", PNG) in found
    assert ("doklad.pdf", "application/pdf", None, PDF) in found
    # an attachment that cannot be decoded is kept as it came
    broken = next(p for p in message.walk() if p.get_filename() == "poskodene.jpg")
    assert str(broken.get_payload()).strip() == "/9j/4AAQ!!!this is not base64"


def test_postmark_raw_email_is_preferred_when_present() -> None:
    raw = eml("cs_iso-8859-2_qp.eml")
    payload = {
        "RawEmail": raw.decode("ascii"),
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "OriginalRecipient": "reklamace@eshop.example",
        "Subject": "ignored when the raw message is there",
    }
    email = parse_postmark(payload)
    assert email.raw == raw
    assert email.subject == "Reklamace objednávky č. 2024001234"
    assert email.recipient == "reklamace@eshop.example"


def test_postmark_without_a_message_id_header_gets_the_hash_not_postmarks_id() -> None:
    payload = copy.deepcopy(fixture("postmark.json"))
    payload["Headers"] = [h for h in payload["Headers"] if h["Name"] != "Message-ID"]
    email = parse_postmark(payload)
    assert email.message_id == "sha256:" + hashlib.sha256(email.raw).hexdigest()
    assert parse_postmark(payload).message_id == email.message_id  # redelivery: same id


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_sendgrid, {}),
        (parse_sendgrid, {"spam_score": "0.1"}),
        (parse_mailgun, {}),
        (parse_mailgun, {"timestamp": "1", "token": "t", "signature": "s"}),
        (parse_postmark, {}),
        (parse_postmark, {"hello": "world"}),
        (parse_postmark, []),
        (parse_postmark, "RawEmail"),
        (parse_postmark, None),
        (parse_sendgrid, {"email": "not a message"}),
        (parse_mailgun, {"body-mime": "{}"}),
    ],
)
def test_a_body_in_another_format_is_refused(parse: Any, body: Any) -> None:
    with pytest.raises(EmailFormatError):
        parse(body)


def test_mailgun_signatures() -> None:
    key, timestamp, token = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0", "1710238802", "a" * 50
    good = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    assert mailgun_signature_valid(key, timestamp, token, good)
    assert mailgun_signature_valid(key, timestamp, token, good.upper())
    assert not mailgun_signature_valid("other-key", timestamp, token, good)
    assert not mailgun_signature_valid(key, "1710238803", token, good)
    assert not mailgun_signature_valid(key, timestamp, token + "x", good)
    assert not mailgun_signature_valid(key, timestamp, token, good[:-1])
    assert not mailgun_signature_valid(key, timestamp, token, "ž" * 64)
    assert not mailgun_signature_valid("", timestamp, token, good)
    assert not mailgun_signature_valid(key, "", "", "")


# -- forwarding -----------------------------------------------------------------------------

EMLS = sorted(path.name for path in PAYLOADS.glob("*.eml"))


def every_raw() -> list[tuple[str, bytes]]:
    raws = [(name, eml(name)) for name in EMLS]
    raws.append(("sendgrid_parsed", parse_sendgrid(form("sendgrid_parsed.json")).raw))
    raws.append(("sendgrid_raw", parse_sendgrid(form("sendgrid_raw.json")).raw))
    raws.append(("mailgun_forward", parse_mailgun(form("mailgun_forward.json")).raw))
    raws.append(("mailgun_mime", parse_mailgun(form("mailgun_mime.json")).raw))
    raws.append(("postmark", parse_postmark(fixture("postmark.json")).raw))
    return raws


RAWS = every_raw()
HEADERS = ("From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To")


def leaves(raw: bytes) -> list[Message]:
    return [part for part in compat(raw).walk() if not part.is_multipart()]


def is_text_body(part: Message) -> bool:
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and part.get_content_disposition() != "attachment"
        and part.get_filename() is None
    )


def decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    try:
        return payload.decode(part.get_content_charset() or "ascii", "surrogateescape")
    except LookupError:  # an unknown label: compare the bytes
        return payload.decode("latin-1")


@pytest.mark.parametrize(("name", "raw"), RAWS, ids=[name for name, _ in RAWS])
def test_a_forward_is_the_original_with_our_headers_on_top(name: str, raw: bytes) -> None:
    out = forwarded(raw, added_headers=ADDED, mask_cards=False)
    eol = b"\r\n" if b"\r\n" in raw.split(b"\n", 1)[0] + b"\n" else b"\n"
    top = b"".join(f"{k}: {v}".encode() + eol for k, v in ADDED.items())
    assert out == top + raw
    original = message_from_bytes(raw, policy=policy.default)
    sent = message_from_bytes(out, policy=policy.default)
    for header in HEADERS:
        assert sent.get_all(header) == original.get_all(header), header
    for header, value in ADDED.items():
        assert sent[header] == value
    assert unfolded(compat(out).items())[len(ADDED) :] == unfolded(compat(raw).items())


@pytest.mark.parametrize(("name", "raw"), RAWS, ids=[name for name, _ in RAWS])
def test_masking_changes_only_card_numbers_in_text_bodies(name: str, raw: bytes) -> None:
    out = forwarded(raw, added_headers=ADDED, mask_cards=True)
    assert unfolded(compat(out).items())[len(ADDED) :] == unfolded(compat(raw).items())
    before, after = leaves(raw), leaves(out)
    assert len(before) == len(after)
    changed = False
    single = not compat(raw).is_multipart()  # then the one leaf carries our headers too
    for index, (original, sent) in enumerate(zip(before, after, strict=True)):
        skip = len(ADDED) if single and index == 0 else 0
        assert original.items() == sent.items()[skip:]  # same part headers: charset, encoding
        if is_text_body(original):
            assert decoded(sent) == mask_cards(decoded(original))
            changed |= decoded(sent) != decoded(original)
        else:
            assert sent.get_payload() == original.get_payload()  # byte-identical
    if not changed:
        assert out == forwarded(raw, added_headers=ADDED, mask_cards=False)


@pytest.mark.parametrize(
    ("name", "card", "masked"),
    [
        ("cs_iso-8859-2_qp.eml", "4111 1111 1111 1111", "**** **** **** 1111"),
        ("ru_koi8-r_base64.eml", "5555 5555 5555 4444", "**** **** **** 4444"),
        ("nested_mixed_related_alternative.eml", "4111-1111-1111-1111", "****-****-****-1111"),
        ("broken_base64_attachment.eml", "4111111111111111", "************1111"),
    ],
)
def test_cards_in_every_encoding_are_masked(name: str, card: str, masked: str) -> None:
    out = forwarded(eml(name), added_headers=ADDED, mask_cards=True)
    bodies = [decoded(part) for part in leaves(out) if is_text_body(part)]
    assert bodies and all(card not in body for body in bodies)
    assert any(masked in body for body in bodies)


def test_a_card_in_an_attached_text_file_is_left_as_it_is() -> None:
    out = forwarded(eml("nested_mixed_related_alternative.eml"), added_headers={}, mask_cards=True)
    [note] = [part for part in leaves(out) if part.get_filename() == "poznamka.txt"]
    assert "4111 1111 1111 1111" in decoded(note)


def test_an_inline_forwarded_message_is_masked_but_an_attached_one_is_not() -> None:
    inner = b"Subject: old\r\nContent-Type: text/plain\r\n\r\nkarta 4111 1111 1111 1111\r\n"
    raw = b"".join(
        [
            b"Subject: Fwd\r\nMIME-Version: 1.0\r\n",
            b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n',
            b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner,
            b"--b\r\nContent-Type: message/rfc822\r\n",
            b"Content-Disposition: attachment\r\n\r\n" + inner,
            b"--b--\r\n",
        ]
    )
    out = forwarded(raw, added_headers={}, mask_cards=True)
    assert out.count(b"4111 1111 1111 1111") == 1
    assert out.count(b"**** **** **** 1111") == 1
    assert out.index(b"****") < out.index(b"4111")


def test_sendgrid_html_and_text_are_masked_in_their_own_charset() -> None:
    raw = parse_sendgrid(form("sendgrid_parsed.json")).raw
    out = forwarded(raw, added_headers=ADDED, mask_cards=True)
    texts = [part for part in leaves(out) if is_text_body(part)]
    assert [part.get_content_charset() for part in texts] == ["iso-8859-2", "iso-8859-2"]
    assert all("**** **** **** 1111" in decoded(part) for part in texts)
    assert all("vrácení peněz" in decoded(part) for part in texts)


def test_added_headers_are_safe_and_follow_the_messages_line_ends() -> None:
    raw = b"From: a@example.cz\nSubject: x\n\nbody\n"
    out = forwarded(
        raw,
        added_headers={
            "X-Switchboard-Reason": "po\r\nBcc: evil@example.com",
            "X-Switchboard-Destination": "hotline-žluť",
        },
        mask_cards=False,
    )
    head, _, body = out.partition(b"\n\n")
    assert body == b"body\n"
    assert b"\r" not in head
    message = message_from_bytes(out, policy=policy.default)
    assert message["Bcc"] is None
    assert message["X-Switchboard-Reason"] == "po Bcc: evil@example.com"
    assert message["X-Switchboard-Destination"] == "hotline-žluť"
    with pytest.raises(ValueError):
        forwarded(raw, added_headers={"Bad Name": "x"}, mask_cards=False)


def test_a_charset_name_with_a_nul_byte_is_read_as_unknown() -> None:
    # found by the corrupted-multipart property: codecs.lookup raises ValueError on NUL
    raw = b'From: a@example.cz\nContent-Type: text/plain; charset="ut\x00f-8"\n\nobjednavka\n'
    assert parse_mime(raw).text.strip() == "objednavka"
    forwarded(raw, added_headers=ADDED, mask_cards=True)


def test_card_numbers_in_header_fields_are_masked_and_their_structure_kept() -> None:
    raw = (
        b"From: =?utf-8?q?Jana_4111_1111_1111_1111?= <jana@example.cz>\r\n"
        b"To: podpora@eshop.example\r\n"
        b"Subject: =?utf-8?b?S2FydGEgNDExMSAxMTExIDExMTEgMTExMQ==?=\r\n"
        b"Message-ID: <x-4012888888881881-x@example.cz>\r\n"
        b"References: <a@example.cz>\r\n <x-5555555555554444-x@example.cz>\r\n"
        b"X-Order: 4111111111111112\r\n"
        b"\r\n"
        b"Dobry den\r\n"
    )
    out = forwarded(raw, added_headers={}, mask_cards=True)
    sent = message_from_bytes(out, policy=policy.default)
    assert str(sent["From"]) == "Jana **** **** **** 1111 <jana@example.cz>"
    assert sent["From"].addresses[0].addr_spec == "jana@example.cz"
    assert str(sent["Subject"]) == "Karta **** **** **** 1111"
    assert sent["Message-ID"] == "<x-************1881-x@example.cz>"
    assert sent["References"] == "<a@example.cz> <x-************4444-x@example.cz>"
    assert sent["X-Order"] == "4111111111111112"  # no card (Luhn): as it was
    assert b"\r\nX-Order: 4111111111111112\r\n\r\nDobry den\r\n" in out
    assert forwarded(raw, added_headers={}, mask_cards=False) == raw
