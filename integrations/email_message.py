"""The bytes of a forwarded email (SPEC §6): the customer's original message, changed only
where Switchboard must change it. Pure: bytes in, bytes out; no network, no database.

``forwarded`` owns two rules and nothing else:

* our ``X-Switchboard-*`` headers go on top of the header block, in the message's own line
  ending; every original byte follows unchanged (an mbox ``From `` envelope line, which is
  not part of an RFC 5322 message, is dropped);
* with ``mask_cards`` (a destination outside the shop), card numbers are masked with
  router/core/masking.py in every ``text/plain`` and ``text/html`` body part that is not an
  attachment (nor inside an attached message; an inline ``message/rfc822`` is followed),
  ``text/html`` as its reader sees it (``mask_cards_in_html``: character references
  decoded, inline tags between digit groups ignored).
  Such a part is decoded from its transfer encoding (RFC 2045) and charset, masked, and
  written back in the same charset and transfer encoding; a part without a card stays
  byte-identical, and so does everything else: boundaries, preambles, other parts,
  attachments. The top-level header fields are masked too (the Subject decoded whole; any
  other field — a Message-ID or References the sender chose, a display name — in its text
  and in each encoded word, its structure kept); a field without a card stays as it was.

The MIME structure is walked on the bytes themselves (RFC 2046 boundaries), not through a
parse-and-regenerate round trip, because ``email.generator`` re-folds headers and rewrites
bodies, which would break DKIM signatures and the "unchanged" promise.
Imports only the standard library and router/core/masking.py.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterator, Mapping
from email.errors import MessageError
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from router.core.masking import mask_cards, mask_cards_in_html, may_hold_a_card

__all__ = ["forwarded", "masked_original", "quoted_printable", "split_head", "without_mbox_line"]

_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$%&'*+.^_`|~-]*")
_MAX_DEPTH = 32  # nesting of multiparts we follow; deeper parts are left as they are
_TEXT_TYPES = ("text/plain", "text/html")
_BLANKS = b" \t"


def _eol(raw: bytes) -> bytes:
    newline = raw.find(b"\n")
    return b"\r\n" if newline > 0 and raw[newline - 1 : newline] == b"\r" else b"\n"


def without_mbox_line(raw: bytes) -> bytes:
    """*raw* without a leading mbox ``From `` envelope line (not part of the message)."""
    if raw.startswith(b"From "):
        newline = raw.find(b"\n")
        return raw[newline + 1 :] if newline >= 0 else b""
    return raw


def _header_line(name: str, value: str, eol: bytes) -> bytes:
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"not a header field name: {name!r}")
    flat = " ".join(value.split())  # no CR/LF may reach the header block
    if flat.isascii():
        return f"{name}: {flat}".encode("ascii") + eol
    encoded = Header(flat, "utf-8", header_name=name).encode(linesep=eol.decode("ascii"))
    return f"{name}: {encoded}".encode("ascii") + eol


def split_head(entity: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Where the header block of the entity ``entity[start:end]`` ends and its body starts
    (absolute offsets). Without an empty line the whole entity is header."""
    stop = len(entity) if end is None else end
    position = start
    while position < stop:
        newline = entity.find(b"\n", position, stop)
        if newline < 0:
            return stop, stop
        line = entity[position : newline + 1]
        if line in (b"\n", b"\r\n"):
            return position, newline + 1
        position = newline + 1
    return stop, stop


def quoted_printable(data: bytes, eol: bytes = b"\r\n") -> bytes:
    """*data* in quoted-printable (RFC 2045 §6.7) with *eol* line ends, hard line breaks kept."""
    encoded = binascii.b2a_qp(data.replace(b"\r\n", b"\n"), istext=True)
    return encoded.replace(b"\n", eol)


def _base64(data: bytes, eol: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", eol)


def _delimiters(raw: bytes, start: int, end: int, boundary: str) -> Iterator[tuple[int, int, bool]]:
    """The delimiter lines of *boundary* in ``raw[start:end]`` (RFC 2046 §5.1.1), each as
    (where its ``--`` starts, where its trailing blanks end, whether it is the close
    delimiter): at the start of a line, ``--`` and the boundary, ``--`` again to close,
    spaces or tabs, then a line end or *end*.

    Found with ``bytes.find`` for the boundary behind a newline rather than a regular
    expression: every message has its own boundary, so a pattern was compiled for each one
    (about 5 % of the outbox worker's CPU per message, bench/RESULTS.md), and the pattern's
    look-behind was tried at every byte of the body."""
    needle = b"\n--" + boundary.encode("utf-8", "surrogateescape")
    # the newline before the first delimiter may be the one ending the header block, just
    # before *start*: a body that opens with its first delimiter is found too
    position = max(start - 1, 0)
    while True:
        found = raw.find(needle, position, end)
        if found < 0:
            return
        after = found + len(needle)
        # the close delimiter if "--" follows and the line then ends; else an open one if
        # the line ends right after the boundary
        for closing in (True, False) if raw.startswith(b"--", after, end) else (False,):
            stop = after + 2 if closing else after
            while stop < end and raw[stop] in _BLANKS:
                stop += 1
            if (
                stop == end
                or raw.startswith(b"\n", stop, end)
                or raw.startswith(b"\r\n", stop, end)
            ):
                yield found + 1, stop, closing
                position = stop - 1
                break
        else:
            position = found + 1


def _children(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """The (start, end) of every body part between the delimiter lines of a multipart whose
    body is ``raw[start:end]``; the line end before a delimiter belongs to the delimiter."""
    parts: list[tuple[int, int]] = []
    opened: int | None = None
    for delimiter_start, delimiter_end, closing in _delimiters(raw, start, end, boundary):
        if opened is not None:
            part_end = delimiter_start - 1
            if part_end > opened and raw[part_end - 1 : part_end] == b"\r":
                part_end -= 1
            if part_end >= opened:
                parts.append((opened, part_end))
        if closing:
            return parts
        after = delimiter_end
        if raw[after : after + 2] == b"\r\n":
            after += 2
        elif raw[after : after + 1] == b"\n":
            after += 1
        opened = after
    if opened is not None and opened < end:  # no close delimiter: the part runs to the end
        parts.append((opened, end))
    return parts


def _headers(raw: bytes, start: int, end: int) -> Message:
    """The header block ``raw[start:end]`` as the email package reads it (compat32)."""
    block = raw[start:end]
    plain = _plain_headers(block)
    return plain if plain is not None else BytesHeaderParser(policy=compat32).parsebytes(block)


# a field name as email.feedparser accepts one: printable ASCII but the colon
_FIELD = re.compile(r"[\041-\071\073-\176]+")


def _plain_headers(block: bytes) -> Message | None:
    """*block* read as email.feedparser reads it, when it is a plain header block: one kind
    of line end, and every line a field or a continuation of one. The parser's set-up and
    line machinery cost about as much as the rest of a forward's masking (py-spy, see
    bench/RESULTS.md), and nearly every header block is plain; None for anything else,
    which the parser reads.

    Each field goes through compat32's own ``header_source_parse``, with its lines as the
    parser would hand them over (line ends included)."""
    text = block.decode("ascii", "surrogateescape")
    eol = "\r\n" if "\r" in text else "\n"
    pairs = text.count("\r\n") if eol == "\r\n" else 0
    if text.count("\r") != pairs or (pairs and text.count("\n") != pairs):
        return None  # mixed line ends
    if not text.endswith(eol):
        return None
    message = Message(policy=compat32)
    field: list[str] = []
    for line in text[: -len(eol)].split(eol):
        if line[:1] in (" ", "\t"):
            if not field:
                return None  # a continuation of nothing: the parser notes a defect
            field.append(line + eol)
            continue
        colon = line.find(":")
        # not a field (an mbox "From " line among them: no space in a name): the parser's
        # header block ends here, or it keeps the line as the envelope
        if colon < 0 or not _FIELD.fullmatch(line, 0, colon):
            return None
        if field:
            message.set_raw(*compat32.header_source_parse(field))
        field = [line + eol]
    if field:
        message.set_raw(*compat32.header_source_parse(field))
    return message


def _is_attachment(headers: Message) -> bool:
    if headers.get_content_disposition() == "attachment":
        return True
    return headers.get_filename() is not None or headers.get_param("name") is not None


def _round_trip(data: bytes, charset: str) -> tuple[str, str]:
    """*data* as text, decoded so that encoding it back gives *data* again."""
    for codec in (charset, "latin-1"):
        try:
            text = data.decode(codec, "surrogateescape")
            if text.encode(codec, "surrogateescape") == data:
                return text, codec
        except (LookupError, UnicodeError, ValueError):  # ValueError: a NUL in the name
            continue
    return data.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 always round-trips


def _masked_body(body: bytes, headers: Message) -> bytes | None:
    """The masked body of a text part, or None when it has no card or cannot be decoded."""
    encoding = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
    eol = _eol(body)
    if encoding == "quoted-printable":
        decoded = quopri.decodestring(body)
    elif encoding == "base64":
        try:
            decoded = base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error:
            return None  # kept as it came
    elif encoding in ("7bit", "8bit", "binary"):
        decoded = body
    else:
        return None
    charset = headers.get_content_charset() or "us-ascii"
    text, codec = _round_trip(decoded, charset)
    # HTML is masked as its reader sees it: "4111&nbsp;1111…" or "4111 <b>1111</b>…" is a
    # card there, and only its digits change, so the markup stays valid
    html = headers.get_content_type() == "text/html"
    masked = mask_cards_in_html(text) if html else mask_cards(text)
    if masked == text:
        return None
    data = masked.encode(codec, "surrogateescape")
    if encoding == "quoted-printable":
        encoded = quoted_printable(data, eol)
    elif encoding == "base64":
        encoded = _base64(data, eol)
    else:
        return data
    if not body.endswith(b"\n"):
        encoded = encoded.rstrip(b"\r\n")
    return encoded


def _collect(
    raw: bytes, start: int, end: int, depth: int, changes: list[tuple[int, int, bytes]]
) -> None:
    """Find the text parts of the entity ``raw[start:end]`` whose masked body differs."""
    head_end, body_start = split_head(raw, start, end)
    headers = _headers(raw, start, head_end)
    content_type = headers.get_content_type()
    if content_type.startswith("multipart/"):
        boundary = headers.get_boundary()
        if boundary and depth < _MAX_DEPTH:
            for child_start, child_end in _children(raw, body_start, end, boundary):
                _collect(raw, child_start, child_end, depth + 1, changes)
        return
    if content_type == "message/rfc822":  # a message forwarded inline; attached ones stay
        if _is_attachment(headers):
            return
        encoding = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
        if encoding in ("7bit", "8bit", "binary") and depth < _MAX_DEPTH:
            _collect(raw, body_start, end, depth + 1, changes)
        return
    if content_type in _TEXT_TYPES and not _is_attachment(headers):
        masked = _masked_body(raw[body_start:end], headers)
        if masked is not None:
            changes.append((body_start, end, masked))


def _masked_message(raw: bytes) -> bytes:
    changes: list[tuple[int, int, bytes]] = []
    _collect(raw, 0, len(raw), 0, changes)
    if not changes:
        return raw
    pieces = []
    position = 0
    for start, end, replacement in sorted(changes):
        pieces.append(raw[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(raw[position:])
    return b"".join(pieces)


_SUBJECT = re.compile(rb"^Subject:([^\n]*\n(?:[ \t][^\n]*\n)*)", re.IGNORECASE | re.MULTILINE)


def _masked_subject(message: bytes, eol: bytes) -> bytes:
    """*message* with card numbers masked in its Subject (decoded from RFC 2047 and written
    back encoded when it changes); untouched when there is nothing to mask."""
    head_end, _ = split_head(message)
    match = _SUBJECT.search(message, 0, head_end)
    if match is None:
        return message
    folded = match.group(1).decode("utf-8", "surrogateescape")
    unfolded = " ".join(folded.split())
    try:
        decoded = str(make_header(decode_header(unfolded)))
    except (LookupError, UnicodeError, ValueError, MessageError):
        decoded = unfolded  # a broken encoded word: mask what can be read as it stands
    masked = mask_cards(decoded)
    if masked == decoded:
        return message
    replacement = _header_line("Subject", masked.encode("utf-8", "replace").decode("utf-8"), eol)
    return message[: match.start()] + replacement + message[match.end() :]


_HEADER_FIELD = re.compile(rb"^([!-9;-~]+):([^\n]*\n(?:[ \t][^\n]*\n)*)", re.MULTILINE)
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _masked_word(word: re.Match[str]) -> str:
    """One RFC 2047 encoded word with card numbers masked in its text, written back in its
    charset; as it was when it has none or cannot be read."""
    try:
        [(data, charset)] = decode_header(word.group())
        if not isinstance(data, bytes) or charset is None:
            return word.group()
        text = data.decode(charset)
        masked = mask_cards(text)
        if masked == text:
            return word.group()
        return Header(masked, charset).encode()
    except (LookupError, UnicodeError, ValueError, MessageError):
        return word.group()


def _masked_fields(message: bytes, eol: bytes) -> bytes:
    """*message* with card numbers masked in every header field but Subject (an id such as
    Message-ID or References, a display name, …): in the text as written and in each
    encoded word, leaving the field's structure (addresses, angle brackets) as it was."""
    head_end, _ = split_head(message)
    pieces: list[bytes] = []
    position = 0
    for match in _HEADER_FIELD.finditer(message, 0, head_end):
        field = match.group(2)
        if match.group(1).lower() == b"subject":
            continue  # masked whole, decoded, by _masked_subject
        if b"=?" not in field and not may_hold_a_card(field.decode("latin-1")):
            continue
        unfolded = " ".join(field.decode("utf-8", "surrogateescape").split())
        masked = mask_cards(_ENCODED_WORD.sub(_masked_word, unfolded))
        if masked == unfolded:
            continue
        value = masked.encode("utf-8", "surrogateescape")
        pieces += [message[position : match.start()], match.group(1) + b": " + value + eol]
        position = match.end()
    if not pieces:
        return message
    return b"".join(pieces) + message[position:]


def forwarded(raw: bytes, *, added_headers: Mapping[str, str], mask_cards: bool) -> bytes:
    """The original message *raw* with *added_headers* on top, and card numbers masked in
    its text parts and header fields when *mask_cards*; every other byte is the original's."""
    message = without_mbox_line(bytes(raw))
    eol = _eol(message)
    top = b"".join(_header_line(name, value, eol) for name, value in added_headers.items())
    if not mask_cards:
        return top + message
    return top + _masked_fields(_masked_subject(_masked_message(message), eol), eol)


def masked_original(raw: bytes) -> bytes:
    """*raw* with card numbers masked as toward an external destination, and nothing added:
    what the outbox keeps of a message that can only go outside the shop (SPEC §6)."""
    return forwarded(raw, added_headers={}, mask_cards=True)
