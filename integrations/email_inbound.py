"""Inbound email: each provider's webhook payload turned into one neutral ``InboundEmail``.

Pure: values in, values out; no network, no database, no clock. This module owns what a
provider's fields mean, how a message is decoded for reading (charsets, transfer
encodings, RFC 2047 headers, HTML), and the raw RFC 822 bytes that Switchboard forwards.

Field names come from the providers' own documents:

* SendGrid, "Inbound Email Parse Webhook" and "Setting up the Inbound Parse Webhook":
  default (parsed) posts carry ``headers`` (the raw header block), ``text``, ``html``,
  ``from``, ``to``, ``cc``, ``subject``, ``envelope`` (JSON ``{"to": [...], "from": ...}``),
  ``charsets`` (JSON: the charset of each field; ``text`` and ``html`` keep the message's
  own charset), ``attachments`` (a count), ``attachment-info`` (JSON ``{"attachment1":
  {"filename", "name", "type", "content-id"}}``) and files ``attachment1`` … ``attachmentN``;
  with "POST the raw, full MIME message" the whole message is the ``email`` field.
* Mailgun, "Receiving Messages via HTTP through a forward() action": parsed posts carry
  ``recipient`` and ``sender`` (the SMTP envelope), ``from``, ``subject``, ``body-plain``,
  ``body-html``, ``stripped-text``, ``message-headers`` (JSON list of ``[name, value]``
  pairs, in order), ``attachment-count``, files ``attachment-1`` … and ``content-id-map``
  (JSON ``{"<cid>": "attachment-1"}``); a route URL ending in ``mime`` (and ``store()``
  notifications asked for MIME) posts the message as ``body-mime``. "Securing Webhooks":
  ``signature`` is the hex HMAC-SHA256 of ``timestamp`` + ``token`` keyed by the webhook
  signing key.
* Postmark, "Inbound webhook" and "Parse an email": JSON with ``FromFull``, ``To`` /
  ``ToFull``, ``Cc`` / ``CcFull``, ``OriginalRecipient``, ``ReplyTo``, ``Subject``,
  ``Date``, ``TextBody``, ``HtmlBody``, ``StrippedTextReply``, ``Headers`` (``[{Name,
  Value}]``, without the fields given on top), ``MessageID`` (Postmark's own id, not the
  Message-ID header) and ``Attachments`` (``[{Name, Content (base64), ContentType,
  ContentLength, ContentID}]``); ``RawEmail`` when "include raw email content" is on.

``raw`` is the original message whenever the provider hands it over (SendGrid raw, Mailgun
``body-mime``, Postmark ``RawEmail``, our ``mime`` endpoint). Otherwise it is rebuilt,
deterministically (a redelivered payload gives the same bytes, so the same hash id), from
the parsed fields: every original header in its order except those describing the old MIME
structure (Content-Type, Content-Transfer-Encoding, MIME-Version, Content-Length,
Content-Disposition), then ``text/plain`` and ``text/html`` as alternatives (SendGrid's in
their original bytes and charset), inline parts (with a content id) in a
``multipart/related``, attachments with their names and types in a ``multipart/mixed``.
Every ``InboundEmail`` field is then read from ``raw`` by the same code as ``parse_mime``,
so a message reads the same whichever way it came.

Mail is accepted as it comes (SPEC §6): the message is parsed with the tolerant compat32
policy of ``email.parser.BytesParser`` (``policy.default`` raises on access to some
malformed headers, and its header objects replace undecodable bytes), and header values
are decoded here: ``email.header.decode_header`` first, word by word when one broken
encoded word makes it give up on the whole value. A missing
Message-ID gives ``"sha256:<hex of raw>"``; an unusable From gives ``sender == ""``; an
attachment whose content cannot be decoded is kept as it came.

Imports only the standard library, integrations/email_message.py and router/core/mailtext.py:
never aiohttp, the store, the clock or the network.

Web layers must hand text fields over so that ``value.encode("utf-8", "surrogateescape")``
gives the bytes that were posted (aiohttp's strict UTF-8 decoding does, for UTF-8 bodies),
or pass them as ``FormFile``: SendGrid's ``text``/``html`` and raw ``email`` fields may be
in any charset.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import hmac
import quopri
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import encode_rfc2231, formataddr, getaddresses
from typing import TypeAlias

from integrations import signing
from integrations.email_message import quoted_printable, without_mbox_line
from router.core.contact import Channel, Contact
from router.core.jsondata import parse_json
from router.core.mailtext import classification_text, html_to_text

__all__ = [
    "EmailFormatError",
    "Form",
    "FormFile",
    "InboundEmail",
    "MailgunSignature",
    "decode_text",
    "mailgun_signature",
    "mailgun_signature_valid",
    "parse_mailgun",
    "parse_mime",
    "parse_postmark",
    "parse_sendgrid",
    "verify_mailgun",
    "verify_mime",
    "verify_postmark",
    "verify_sendgrid",
]


@dataclass(frozen=True, slots=True)
class FormFile:
    """A multipart upload, already read."""

    filename: str
    content_type: str
    data: bytes


Form: TypeAlias = Mapping[str, str | bytes | FormFile]


@dataclass(frozen=True, slots=True)
class InboundEmail:
    raw: bytes  # the RFC 822 message to forward (original bytes, or rebuilt from fields)
    message_id: str  # Message-ID without <>; else "sha256:" + hex sha256 of raw
    sender: str  # lower-cased bare address from From ("" when unusable); not Reply-To
    subject: str  # decoded (RFC 2047)
    text: str  # text/plain preferred, else HTML as text; decoded
    references: tuple[str, ...]  # In-Reply-To then References ids, without <>, unique
    recipient: str  # where it was sent (envelope, else To), lower-cased; "" if unknown

    def contact(self, received_at: datetime) -> Contact:
        """The email as the core sees it: the sender is the customer, the subject and the
        customer's own words (quotes, signatures and HTML stripped) are what is classified,
        and the references name the thread."""
        return Contact(
            channel=Channel.EMAIL,
            provider_id=self.message_id,
            customer_key=self.sender,
            received_at=received_at,
            text=classification_text(self.subject, self.text),
            references=self.references,
        )


class EmailFormatError(ValueError):
    """The body is not the provider's format (the webhook answers 400 with this message)."""


# -- decoding for reading -----------------------------------------------------------------

_MAX_DEPTH = 32
_CRLF = b"\r\n"
_HEADER_START = re.compile(rb"[A-Za-z0-9][A-Za-z0-9!#$%&'*+.^_`|~-]*[ \t]*:")
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$%&'*+.^_`|~-]*")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATES = re.compile("[\udc80-\udcff]+")
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t]+(?==\?[^?\s]+\?[bBqQ]\?)")  # RFC 2047 §6.2
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*")
_CHARSET = re.compile(r"[A-Za-z0-9][\w!#$%&'+.^`{}~-]*")
_MIME_STRUCTURE = frozenset(
    (
        "content-type",
        "content-transfer-encoding",
        "mime-version",
        "content-length",
        "content-disposition",
    )
)
# Labels mail clients use that Python's codecs do not know, or that real mail means more
# broadly (iso-8859-1 mail is windows-1252 in practice, as browsers assume).
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "utf8": "utf-8",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "x-mac-ce": "mac-latin2",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
}
# Unlabelled 8-bit text that is not UTF-8: the shop's region writes windows-1250.
_FALLBACK_CHARSET = "cp1250"


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # unknown, or not even a name (a NUL in it)
        return None


def decode_text(data: bytes, charset: str | None) -> str:
    """*data* as text in its declared *charset*; never raises. Unknown or missing charsets
    try UTF-8, then windows-1250; undecodable bytes become U+FFFD."""
    codec = _codec(charset)
    if codec is not None:
        try:
            return data.decode(codec, "replace")
        except (LookupError, UnicodeError):  # pragma: no cover - exotic codec failures
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(_FALLBACK_CHARSET, "replace")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", "").replace("\n", "").strip()


def _eight_bit(value: str) -> str:
    """A raw header value whose 8-bit bytes the parser kept as surrogates, decoded."""
    if not _SURROGATES.search(value):
        return value
    return decode_text(_utf8(value), None)


def _word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    try:
        if encoding in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = quopri.decodestring(text.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return match.group()
    return decode_text(data, charset.partition("*")[0])  # RFC 2231 adds "*language"


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded, tolerating unknown charsets and broken words."""
    if "=?" not in value:
        return value
    try:
        chunks = decode_header(value)
    except (HeaderParseError, ValueError, LookupError):
        # decode_header gives up on the whole value for one bad word: decode word by word
        return _ENCODED_WORD.sub(_word, _BETWEEN_WORDS.sub("", value))
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:
            out.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_text(chunk, charset))
    return "".join(out)


def _header_text(value: str) -> str:
    return " ".join(_decode_words(_eight_bit(_unfold(value))).split())


def _address(value: str) -> str:
    """The first usable bare address of an address header, lower-cased, or ""."""
    value = _eight_bit(_unfold(value))
    if not value:
        return ""
    for _, address in _address_pairs(value):
        if _ADDRESS.fullmatch(address.strip()):
            return address.strip().lower()
    bracketed = re.search(r"<\s*(" + _ADDRESS.pattern + r")\s*>", value)
    if bracketed:
        return bracketed.group(1).lower()
    return ""


def _address_pairs(value: str) -> list[tuple[str, str]]:
    """getaddresses() that never raises: the standard library's parser recurses once per
    group (``a:b:c:…``), so a header of a few thousand colons is a RecursionError."""
    try:
        return getaddresses([value])
    except (ValueError, TypeError, IndexError, HeaderParseError, RecursionError):
        return []


def _ids(value: str) -> list[str]:
    # 8-bit bytes decoded: kept as surrogates, an id could not be stored (UTF-8 refuses them)
    value = _eight_bit(_unfold(value))
    found = _MESSAGE_ID.findall(value)
    if found:
        return found
    # some clients drop the angle brackets
    return [token.strip("<>,;") for token in value.split() if "@" in token.strip("<>,;")]


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


class _Fields:
    """The top-level header fields of a message, raw values in order, by lower-case name."""

    def __init__(self, message: Message) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in message.raw_items():
            self.values.setdefault(name.strip().lower(), []).append(str(value))

    def first(self, name: str) -> str:
        return next(iter(self.values.get(name, [])), "")

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment":
        return True
    return part.get_filename() is not None or part.get_param("name") is not None


def _leaf_bytes(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, binascii.Error):  # pragma: no cover - defensive
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return _utf8(raw) if isinstance(raw, str) else b""


def _leaf_text(part: Message) -> str:
    return decode_text(_leaf_bytes(part), part.get_content_charset())


def _body_text(part: Message, depth: int = 0) -> str | None:
    """The readable text of *part*: text/plain preferred over its HTML alternative."""
    if depth > _MAX_DEPTH:
        return None
    content_type = part.get_content_type()
    if part.get_content_maintype() == "message":
        return None  # a forwarded message attached whole
    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):  # pragma: no cover - defensive
            return None
        texts = [
            (child, _body_text(child, depth + 1))
            for child in children
            if isinstance(child, Message)
        ]
        found = [(child, text) for child, text in texts if text is not None]
        if not found:
            return None
        if content_type == "multipart/alternative":
            plain = [text for child, text in found if child.get_content_type() == "text/plain"]
            return plain[0] if plain else found[0][1]
        if content_type in ("multipart/related", "multipart/signed"):
            return found[0][1]
        return "\n\n".join(text for _, text in found if text.strip())
    if _is_attachment(part):
        return None
    if content_type == "text/plain" or part.get_content_maintype() == "multipart":
        return _leaf_text(part)
    if content_type == "text/html":
        return html_to_text(_leaf_text(part))
    return None


def _inspect(raw: bytes, *, recipient: str = "") -> InboundEmail:
    """Read the neutral fields of the RFC 822 message *raw*."""
    message = BytesParser(policy=compat32).parsebytes(raw)
    fields = _Fields(message)
    ids = _ids(fields.first("message-id"))
    message_id = ids[0] if ids else "sha256:" + hashlib.sha256(raw).hexdigest()
    references = _unique(
        [
            *_ids(" ".join(fields.all("in-reply-to"))),
            *_ids(" ".join(fields.all("references"))),
        ]
    )
    if not recipient:
        for name in ("x-original-to", "delivered-to", "envelope-to", "to"):
            recipient = _address(fields.first(name))
            if recipient:
                break
    text = _body_text(message) or ""
    return InboundEmail(
        raw=raw,
        message_id=message_id,
        sender=_address(fields.first("from")),
        subject=_header_text(fields.first("subject")),
        text=text.replace("\r\n", "\n").replace("\r", "\n"),
        references=references,
        recipient=recipient.lower(),
    )


def parse_mime(raw: bytes) -> InboundEmail:
    """An RFC 822 message as it came; EmailFormatError only without a header block."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise EmailFormatError("expected the bytes of an RFC 822 message")
    message = without_mbox_line(bytes(raw))
    if not _HEADER_START.match(message):
        raise EmailFormatError("no parsable header block (the body must start with a header)")
    return _inspect(message)


# -- rebuilding a message from parsed fields ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    headers: tuple[str, ...]  # header lines, without line ends
    body: bytes  # transfer-encoded, CRLF line ends

    def rendered(self) -> bytes:
        return _utf8("\r\n".join(self.headers)) + _CRLF + _CRLF + self.body


def _multipart(subtype: str, parts: Sequence[_Part]) -> _Part:
    rendered = [part.rendered() for part in parts]
    # Derived from the content, so a redelivered payload gives the same bytes.
    boundary = "=_sb_" + hashlib.sha256(b"\0".join(rendered)).hexdigest()[:32]
    delimiter = b"--" + boundary.encode("ascii")
    body = b"".join(delimiter + _CRLF + part + _CRLF for part in rendered)
    body += delimiter + b"--" + _CRLF
    return _Part((f'Content-Type: multipart/{subtype}; boundary="{boundary}"',), body)


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", _CRLF, data)


def _text_part(subtype: str, data: bytes, charset: str | None) -> _Part:
    label = (charset or "utf-8").strip().strip("\"'")
    if not _CHARSET.fullmatch(label):
        label = "utf-8"
    if data.isascii() and all(len(line) <= 998 for line in data.splitlines()):
        encoding, body = "7bit", _crlf(data)
    else:
        encoding, body = "quoted-printable", quoted_printable(data)
    return _Part(
        (
            f'Content-Type: text/{subtype}; charset="{label.lower()}"',
            f"Content-Transfer-Encoding: {encoding}",
        ),
        body,
    )


def _parameter(name: str, value: str) -> str:
    value = " ".join(value.split())
    if not value:
        return ""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'; {name}="{value}"'
    # A filename's undecodable bytes reach us as surrogates (aiohttp decodes part headers
    # with surrogateescape), which UTF-8 cannot encode: they become U+FFFD.
    text = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return f"; {name}*={encode_rfc2231(text, 'utf-8')}"


def _content_type(value: str) -> str:
    kind, _, parameters = value.partition(";")
    kind = kind.strip().lower()
    if not _CONTENT_TYPE.fullmatch(kind):
        return "application/octet-stream"
    charset = re.search(r"charset\s*=\s*\"?([\w.:+-]+)", parameters, re.IGNORECASE)
    return f'{kind}; charset="{charset.group(1)}"' if charset else kind


@dataclass(frozen=True, slots=True)
class _File:
    filename: str
    content_type: str
    data: bytes | None  # decoded content; None when it could not be decoded
    kept: bytes = b""  # the transfer-encoded content as it came, when data is None
    content_id: str = ""

    def part(self, *, inline: bool) -> _Part:
        headers = [
            f"Content-Type: {_content_type(self.content_type)}" + _parameter("name", self.filename),
            ("Content-Disposition: inline" if inline else "Content-Disposition: attachment")
            + _parameter("filename", self.filename),
            "Content-Transfer-Encoding: base64",
        ]
        content_id = self.content_id.strip().strip("<>").strip()
        if content_id and not any(c.isspace() for c in content_id):
            headers.append(f"Content-ID: <{content_id}>")
        if self.data is not None:
            body = base64.encodebytes(self.data).replace(b"\n", _CRLF)
        else:
            body = _crlf(self.kept.strip()) + _CRLF
        return _Part(tuple(headers), body)


def _header_field(name: str, value: str) -> str | None:
    if not _FIELD_NAME.fullmatch(name.strip()):
        return None
    folded = _FOLD.sub("\r\n", value.strip())
    folded = re.sub(r"\r?\n(?![ \t])|\r(?!\n)", " ", folded)  # nothing may end the field
    return f"{name.strip()}: {folded}"


def _unstructured(value: str) -> str:
    value = " ".join(value.split())
    return value if value.isascii() else Header(value, "utf-8").encode(linesep="\r\n")


def _addresses(value: str) -> str:
    value = " ".join(value.split())
    if value.isascii():
        return value
    pairs = _address_pairs(value)
    if pairs and all(_ADDRESS.fullmatch(address) for _, address in pairs):
        return ", ".join(_mailbox(name, address) for name, address in pairs)
    return value  # kept in UTF-8 (RFC 6532) rather than hiding the address in a word


def _mailbox(name: str, address: str) -> str:
    """``name <address>`` with the name in an encoded word when it is not ASCII. An address
    that is not ASCII (an internationalised mailbox, or junk) cannot be written in 7-bit
    (formataddr raises UnicodeEncodeError): it is kept in UTF-8, as RFC 6532 allows."""
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    return f"{_unstructured(name)} <{address}>" if name.strip() else address


def _build(
    headers: Sequence[tuple[str, str]],
    *,
    text: _Part | None,
    html: _Part | None,
    files: Sequence[_File],
) -> bytes:
    views = [part for part in (text, html) if part is not None]
    body = _multipart("alternative", views) if len(views) > 1 else next(iter(views), None)
    inline = [file.part(inline=True) for file in files if file.content_id]
    attached = [file.part(inline=False) for file in files if not file.content_id]
    if inline and body is not None:
        body = _multipart("related", [body, *inline])
    else:
        attached = inline + attached
    if attached:
        body = _multipart("mixed", [*([body] if body is not None else []), *attached])
    if body is None:
        body = _text_part("plain", b"", "utf-8")
    lines = [
        line
        for name, value in headers
        if name.strip().lower() not in _MIME_STRUCTURE
        for line in [_header_field(name, value)]
        if line is not None
    ]
    lines += ["MIME-Version: 1.0", *body.headers]
    return _utf8("\r\n".join(lines)) + _CRLF + _CRLF + body.body


def _with(
    headers: list[tuple[str, str]], synthesized: Sequence[tuple[str, str, bool]]
) -> list[tuple[str, str]]:
    """*headers* plus each (name, value, is_address) that is given but missing there."""
    present = {name.strip().lower() for name, _ in headers}
    out = list(headers)
    for name, value, is_address in synthesized:
        if value.strip() and name.lower() not in present:
            out.append((name, _addresses(value) if is_address else _unstructured(value)))
    return out


# -- form and JSON helpers ----------------------------------------------------------------


def _lower_keys(form: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in form.items():
        out.setdefault(str(key).lower(), value)
    return out


def _field_bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, FormFile):
        return value.data
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return _utf8(value)
    return None


def _field_str(value: object, charset: str | None = None) -> str:
    data = _field_bytes(value)
    if data is None:
        return ""
    return decode_text(data, charset or "utf-8")


def _json(value: object) -> object:
    if isinstance(value, Mapping | list):
        return value
    data = _field_bytes(value)
    if not data:
        return None
    try:
        loaded = parse_json(data)
    except ValueError:  # also nested too deep
        return None
    return loaded


def _json_map(value: object) -> dict[str, object]:
    loaded = _json(value)
    return {str(k): v for k, v in loaded.items()} if isinstance(loaded, Mapping) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _numbered_files(fields: Mapping[str, object], pattern: str) -> list[tuple[str, object]]:
    numbered = []
    for key, value in fields.items():
        match = re.fullmatch(pattern, key)
        if match and value is not None:
            # in numeric order without int(): a number of any length is still a name
            digits = match.group(1).lstrip("0")
            numbered.append(((len(digits), digits), key, value))
    return [(key, value) for _, key, value in sorted(numbered, key=lambda item: item[0])]


def _upload(value: object, default_name: str) -> tuple[str, str, bytes]:
    if isinstance(value, FormFile):
        return value.filename, value.content_type, value.data
    return default_name, "application/octet-stream", _field_bytes(value) or b""


def _header_block(text: str) -> list[tuple[str, str]]:
    """The fields of a raw header block (SendGrid's ``headers``), folding kept."""
    fields: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", text):
        if not line.strip():
            if fields:
                break  # the end of the header block
            continue
        if line[0] in " \t":
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + "\r\n" + line)
            continue
        name, colon, value = line.partition(":")
        if colon and _FIELD_NAME.fullmatch(name.strip()):
            fields.append((name.strip(), value.strip()))
    return fields


def _first_address(value: object) -> str:
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str)), "")
    return _address(value) if isinstance(value, str) else ""


# -- providers ----------------------------------------------------------------------------


def _sent_to(email: InboundEmail, recipient: str) -> InboundEmail:
    """*email* with the envelope recipient the provider reported, when it did."""
    return replace(email, recipient=recipient) if recipient else email


def parse_sendgrid(form: Form) -> InboundEmail:
    """SendGrid Inbound Parse: the raw ``email`` field, or the default parsed fields."""
    if not isinstance(form, Mapping):
        raise EmailFormatError("expected SendGrid's form fields")
    fields = _lower_keys(form)
    envelope = _json_map(fields.get("envelope"))
    recipient = _first_address(envelope.get("to")) or _first_address(_field_str(fields.get("to")))
    if "email" in fields:
        raw = _field_bytes(fields["email"])
        if raw is None:
            raise EmailFormatError("SendGrid's 'email' field is empty")
        return _sent_to(parse_mime(raw), recipient)
    if not any(key in fields for key in ("headers", "from", "text", "html", "subject")):
        raise EmailFormatError("neither 'email' (raw) nor SendGrid's parsed fields")
    charsets = {
        key.lower(): _str(value) for key, value in _json_map(fields.get("charsets")).items()
    }
    headers = _with(
        _header_block(_field_str(fields.get("headers"), charsets.get("headers"))),
        [
            ("From", _field_str(fields.get("from"), charsets.get("from")), True),
            ("To", _field_str(fields.get("to"), charsets.get("to")), True),
            ("Cc", _field_str(fields.get("cc"), charsets.get("cc")), True),
            ("Subject", _field_str(fields.get("subject"), charsets.get("subject")), False),
        ],
    )
    text, html = (_field_bytes(fields.get(name)) for name in ("text", "html"))
    info = _json_map(fields.get("attachment-info"))
    files = []
    for key, value in _numbered_files(fields, r"attachment([0-9]+)"):
        meta = info.get(key)
        meta = meta if isinstance(meta, Mapping) else {}
        filename, content_type, data = _upload(value, key)
        files.append(
            _File(
                filename=_str(meta.get("filename")) or _str(meta.get("name")) or filename,
                content_type=_str(meta.get("type")) or content_type,
                data=data,
                content_id=_str(meta.get("content-id")),
            )
        )
    raw = _build(
        headers,
        text=None if text is None else _text_part("plain", text, charsets.get("text")),
        html=None if html is None else _text_part("html", html, charsets.get("html")),
        files=files,
    )
    return _inspect(raw, recipient=recipient)


def parse_mailgun(form: Form) -> InboundEmail:
    """Mailgun routes: forward() parsed fields, or the raw ``body-mime``."""
    if not isinstance(form, Mapping):
        raise EmailFormatError("expected Mailgun's form fields")
    fields = _lower_keys(form)
    recipient = _first_address(_field_str(fields.get("recipient")).split(","))
    if "body-mime" in fields:
        raw = _field_bytes(fields["body-mime"])
        if raw is None:
            raise EmailFormatError("Mailgun's 'body-mime' field is empty")
        return _sent_to(parse_mime(raw), recipient)
    if not any(key in fields for key in ("message-headers", "body-plain", "body-html", "from")):
        raise EmailFormatError("neither 'body-mime' nor Mailgun's parsed fields")
    pairs = _json(fields.get("message-headers"))
    headers = [
        (pair[0], pair[1])
        for pair in (pairs if isinstance(pairs, list) else [])
        if isinstance(pair, list | tuple)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
    ]
    headers = _with(
        headers,
        [
            ("From", _field_str(fields.get("from")), True),
            ("To", _field_str(fields.get("to")) or _field_str(fields.get("recipient")), True),
            ("Subject", _field_str(fields.get("subject")), False),
            ("Message-Id", _field_str(fields.get("message-id")), False),
            ("In-Reply-To", _field_str(fields.get("in-reply-to")), False),
            ("References", _field_str(fields.get("references")), False),
        ],
    )
    content_ids = {
        _str(value): key.strip().strip("<>")
        for key, value in _json_map(fields.get("content-id-map")).items()
    }
    files = []
    for key, value in _numbered_files(fields, r"attachment-([0-9]+)"):
        filename, content_type, data = _upload(value, key)
        files.append(_File(filename, content_type, data, content_id=content_ids.get(key, "")))
    text, html = (_field_bytes(fields.get(name)) for name in ("body-plain", "body-html"))
    raw = _build(
        headers,
        text=None if text is None else _text_part("plain", text, "utf-8"),
        html=None if html is None else _text_part("html", html, "utf-8"),
        files=files,
    )
    return _inspect(raw, recipient=recipient)


_POSTMARK_KEYS = ("From", "FromFull", "Headers", "TextBody", "HtmlBody", "RawEmail", "Subject")


def _postmark_addresses(full: object, plain: object) -> str:
    if isinstance(full, list):
        pairs = [
            (_str(item.get("Name")), _str(item.get("Email")))
            for item in full
            if isinstance(item, Mapping) and _str(item.get("Email"))
        ]
        if pairs:
            return ", ".join(_mailbox(name, address) for name, address in pairs)
    return _str(plain)


def _postmark_file(item: Mapping[str, object]) -> _File:
    content = _str(item.get("Content"))
    try:
        data: bytes | None = base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        data = None  # kept as it came
    return _File(
        filename=_str(item.get("Name")),
        content_type=_str(item.get("ContentType")) or "application/octet-stream",
        data=data,
        kept=_utf8(content),
        content_id=_str(item.get("ContentID")),
    )


def parse_postmark(payload: object) -> InboundEmail:
    """Postmark's inbound JSON (already loaded); prefers ``RawEmail`` when present."""
    if not isinstance(payload, Mapping) or not any(key in payload for key in _POSTMARK_KEYS):
        raise EmailFormatError("not a Postmark inbound message (no From, Headers or body)")
    to_full = payload.get("ToFull")
    recipient = (
        _address(_str(payload.get("OriginalRecipient")))
        or _first_address(
            [_str(item.get("Email")) for item in to_full if isinstance(item, Mapping)]
            if isinstance(to_full, list)
            else []
        )
        or _address(_str(payload.get("To")))
    )
    raw_email = _str(payload.get("RawEmail"))
    if raw_email.strip():
        try:
            email = parse_mime(_utf8(raw_email))
        except EmailFormatError:
            pass  # rebuild from the parsed fields instead
        else:
            return _sent_to(email, recipient)
    listed = payload.get("Headers")
    headers = [
        (_str(item.get("Name")), _str(item.get("Value")))
        for item in (listed if isinstance(listed, list) else [])
        if isinstance(item, Mapping) and _str(item.get("Name"))
    ]
    sender = payload.get("FromFull")
    if isinstance(sender, Mapping) and _str(sender.get("Email")):
        from_value = _mailbox(_str(sender.get("Name")), _str(sender.get("Email")))
    else:
        from_value = _str(payload.get("From"))
    headers = _with(
        headers,
        [
            ("From", from_value, True),
            ("To", _postmark_addresses(to_full, payload.get("To")), True),
            ("Cc", _postmark_addresses(payload.get("CcFull"), payload.get("Cc")), True),
            ("Reply-To", _str(payload.get("ReplyTo")), True),
            ("Subject", _str(payload.get("Subject")), False),
            ("Date", _str(payload.get("Date")), False),
        ],
    )
    listed_files = payload.get("Attachments")
    files = [
        _postmark_file(item)
        for item in (listed_files if isinstance(listed_files, list) else [])
        if isinstance(item, Mapping)
    ]
    text, html = _str(payload.get("TextBody")), _str(payload.get("HtmlBody"))
    raw = _build(
        headers,
        text=_text_part("plain", _utf8(text), "utf-8") if text else None,
        html=_text_part("html", _utf8(html), "utf-8") if html else None,
        files=files,
    )
    return _inspect(raw, recipient=recipient)


def mailgun_signature_valid(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """Mailgun "Securing Webhooks": *signature* is the hex HMAC-SHA256 of timestamp + token
    keyed by the signing key. Constant-time; freshness and replays are the caller's."""
    if not (signing_key and timestamp and token and signature):
        return False
    expected = hmac.new(_utf8(signing_key), _utf8(timestamp + token), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), _utf8(signature.strip().lower()))


# -- who may post: each provider's credentials, checked on values -----------------------------
# The web layer reads the values (query, Authorization header, form, body, the app's clock)
# and answers 403 with the reason returned here; a reason is for the log, never a secret.

MAILGUN_TOLERANCE_SECONDS = 300


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(_utf8(given), _utf8(expected))


def verify_sendgrid(secret: str, *, key: str | None, password: str | None) -> str | None:
    """SendGrid's Inbound Parse has no signature of its own: the URL we give it carries the
    secret as ``?key=`` or as the basic-auth password (SPEC §5). None when either matches."""
    if _same(key, secret) or _same(password, secret):
        return None
    return "bad or missing key"


def verify_postmark(secret: str, *, password: str | None) -> str | None:
    """Postmark's inbound webhook authenticates with the basic-auth credentials of its URL
    ("Inbound webhook", basic HTTP authentication); the password is our secret."""
    if _same(password, secret):
        return None
    return "bad or missing basic-auth password"


def verify_mime(secret: str, raw: bytes, signature: str, now: float) -> str | None:
    """Our own ``mime`` endpoint is signed like every Switchboard webhook:
    X-Switchboard-Signature over the raw message, fresh within 5 minutes of *now* (unix
    seconds)."""
    return signing.verify(secret, raw, signature, now)


@dataclass(frozen=True, slots=True)
class MailgunSignature:
    """The three fields Mailgun signs a post with ("Securing Webhooks")."""

    timestamp: str
    token: str
    signature: str


def mailgun_signature(form: Form) -> MailgunSignature:
    """The signature fields of a Mailgun post, "" for any that is missing."""
    timestamp, token, signature = (
        _field_str(form.get(name)) for name in ("timestamp", "token", "signature")
    )
    return MailgunSignature(timestamp, token, signature)


def verify_mailgun(signing_key: str, signed: MailgunSignature, now: float) -> str | None:
    """None when *signed* is Mailgun's signature, made within 5 minutes of *now* (unix
    seconds). Whether its token was seen before is the caller's: that needs the store."""
    if not mailgun_signature_valid(signing_key, signed.timestamp, signed.token, signed.signature):
        return "bad signature"
    timestamp = signing.unix_seconds(signed.timestamp)
    if timestamp is None or abs(now - timestamp) > MAILGUN_TOLERANCE_SECONDS:
        return "timestamp more than 5 minutes off"
    return None
