"""What the fuzz tests share: how many examples they run, and strategies for the inputs
that providers and operators send us, valid and broken.

``make test`` runs each fuzz test with the handful of examples given to :func:`examples`;
``make soak`` sets ``SWITCHBOARD_FUZZ=soak``, which multiplies them by :data:`SOAK_FACTOR`
(``SWITCHBOARD_FUZZ=5`` by five; README, "Testing"). Local runs draw fresh examples each
time, so a longer soak finds what the short runs missed; with ``CI`` set they are the same
every run (the "ci" profile of tests/conftest.py), so a landing is never refused for a
counterexample met by chance. A failure prints the example to turn into a regression test.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SOAK_FACTOR = 100


def _factor(setting: str) -> int:
    """``soak``: :data:`SOAK_FACTOR`; a whole number: that many times; else 1."""
    if setting == "soak":
        return SOAK_FACTOR
    return int(setting) if setting.isascii() and setting.isdigit() and int(setting) > 0 else 1


FACTOR = _factor(os.environ.get("SWITCHBOARD_FUZZ", ""))


def examples(count: int) -> settings:
    """Hypothesis settings for a fuzz test: *count* examples (times ``SWITCHBOARD_FUZZ``:
    ``soak`` or a number), no per-example deadline (two shared cores make timings noisy),
    fixtures shared across examples on purpose (one app serves every example; what it
    stores is compared)."""
    return settings(
        max_examples=count * FACTOR,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# -- text and bytes that break parsers ---------------------------------------------------------

#: Bytes that are not UTF-8, control characters, a BOM, surrogate-like sequences.
NASTY_BYTES = st.sampled_from(
    [b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r", b"\n", b"\r\n", b"\x1b",
     b"\xef\xbb\xbf", b"%", b"%FF", b"%0", b"+", b"&", b"=", b";", b"\\", b'"', b"\t"]
)  # fmt: skip
NASTY_TEXT = st.sampled_from(
    ["", " ", "²", "١٢٣", "\u202e", "\x00", "\ud800", "9" * 30, "-1", "1e309", "NaN",
     "Infinity", "0x10", "+420", "sip:", "∞", "<Dial>", "${x}", "%s", "\r\nX: y", "ǅ"]
)  # fmt: skip


def junk_bytes(max_size: int = 400) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, often stitched from pieces that trip decoders."""
    piece = st.one_of(NASTY_BYTES, st.binary(max_size=40), st.text(max_size=20).map(str.encode))
    return st.one_of(
        st.binary(max_size=max_size),
        st.lists(piece, max_size=20).map(b"".join),
    )


def junk_text(max_size: int = 200) -> st.SearchStrategy[str]:
    return st.one_of(NASTY_TEXT, st.text(max_size=max_size))


def nested(depth: int, leaf: Any = 0) -> Any:
    """A list *depth* levels deep around *leaf*."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


#: Any JSON value, sometimes absurdly nested or huge in one dimension.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        junk_text(40),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(junk_text(20), children, max_size=5)
    ),
    max_leaves=30,
)


def json_bytes(shaped_like: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[bytes]:
    """A JSON body: a value (of *shaped_like*, else any), deep nesting, or junk bytes."""
    value = shaped_like if shaped_like is not None else json_values
    return st.one_of(
        value.map(lambda v: json.dumps(v).encode()),
        value.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        st.integers(min_value=30, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(min_value=30, max_value=3000).map(lambda n: b'{"a":' * n),
        junk_bytes(),
    )


def with_junk_values(
    shape: dict[str, st.SearchStrategy[Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    """*shape*'s fields, each sometimes replaced by any JSON value or left out, plus a stray
    key now and then: bodies that are almost right."""
    fields = {
        key: st.one_of(strategy, json_values, st.just(_MISSING)) for key, strategy in shape.items()
    }
    return st.fixed_dictionaries(
        fields, optional={"stray": json_values} if len(shape) % 2 else {}
    ).map(lambda d: {k: v for k, v in d.items() if v is not _MISSING})


_MISSING = object()


# -- email: raw MIME, and providers' posts --------------------------------------------------------

CHARSETS = st.sampled_from(
    ["utf-8", "iso-8859-2", "windows-1250", "koi8-r", "utf-16", "x-no-such", "", '"utf-8',
     "utf-7", "unicode-1-1-utf-7", "ascii", "latin1'en'", "big5"]
)  # fmt: skip
TRANSFER_ENCODINGS = st.sampled_from(
    ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "x-no-such", "",
     "BASE64 ", "quoted-printable; junk"]
)  # fmt: skip
HEADER_NAMES = st.sampled_from(
    ["From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References",
     "Date", "Content-Type", "Content-Disposition", "Content-Transfer-Encoding", "X-Č", ""]
)  # fmt: skip
HEADER_VALUES = st.one_of(
    junk_bytes(80),
    st.sampled_from(
        [b"=?utf-8?B?xx?=", b"=?x-no-such?Q?=C4=8D?=", b"=?utf-8?Q?=C4=8", b"Jana <@>",
         b"\"Nov\xe1kov\xe1\" <jana@example.cz>", b"<a@b> <c@d", b"<>", b"\xc4\x8d@\xc4\x8d",
         b"undisclosed-recipients:;", b"a@b, , ,", b"=?utf-8?B?" + b"QUFB" * 50 + b"?="]
    ),
)  # fmt: skip


@st.composite
def mime_part(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A MIME entity: its header block and a body, a multipart nesting more of them (its
    boundary right, wrong or missing), in any charset and transfer encoding, 8-bit bytes
    where 7-bit belongs."""
    headers = [
        draw(HEADER_NAMES).encode() + b": " + draw(HEADER_VALUES)
        for _ in range(draw(st.integers(0, 4)))
    ]
    if depth < 4 and draw(st.booleans()):
        boundary = draw(st.sampled_from([b"b1", b"b2", b"", b"--", b"a" * 80]))
        declared = draw(st.sampled_from([boundary, b"other", b""]))
        subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"x-junk"]))
        headers.append(b"Content-Type: multipart/" + subtype + b'; boundary="' + declared + b'"')
        parts = draw(st.lists(mime_part(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\r\n"
    else:
        subtype = draw(st.sampled_from([b"plain", b"html", b"pdf", b"rfc822"]))
        charset = draw(CHARSETS).encode()
        headers.append(b"Content-Type: text/" + subtype + b"; charset=" + charset)
        headers.append(b"Content-Transfer-Encoding: " + draw(TRANSFER_ENCODINGS).encode())
        body = draw(
            st.one_of(
                junk_bytes(300),
                st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                st.sampled_from([b"=C4=8", b"QUFB=\r\n==", b"<p>Dobr\xfd den</p>", b"=\r\n"]),
            )
        )
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return eol.join(headers) + eol + eol + body


def raw_emails() -> st.SearchStrategy[bytes]:
    return st.one_of(mime_part(), junk_bytes(600))


def form_values() -> st.SearchStrategy[Any]:
    return st.one_of(junk_text(80), junk_bytes(120), raw_emails())
