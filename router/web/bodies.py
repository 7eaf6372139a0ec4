"""Reading request bodies: each route's size limit, the time a body has to arrive, and the
one answer when a body cannot be read.

Every handler reads its body through this module, never through ``request.read()``,
``request.post()`` or ``request.multipart()``: those have no deadline, take one size limit for
the whole application, and raise whatever their parser raises on broken input (a 500). Here
a body

* larger than its route's limit is a 413, before it is read when Content-Length says so
  (:func:`refuse_oversized`, a middleware), else as soon as the limit is passed;
* that does not arrive within ``SWITCHBOARD_BODY_TIMEOUT`` is a 408 (a client trickling its
  body a byte at a time holds a connection, not the service);
* that cannot be read or parsed (a broken chunked or compressed stream, a form that is not
  UTF-8, a multipart without its boundary) is a 400.

Each refusal is JSON ``{"error": "<one line>"}``, logged with its reason as
``request.body_refused``. Nothing is stored, because nothing was parsed. The limits are
README's "Limits and timeouts"; what the body means is the handler's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_to_bytes

import structlog
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from router.settings import Settings
from router.web.appkeys import settings_key

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FORM_TYPE = "application/x-www-form-urlencoded"
MULTIPART_TYPE = "multipart/form-data"
#: How much of a stream is taken at once: small enough that a limit is noticed early.
_CHUNK = 65_536
#: Broken input as aiohttp's stream and multipart reader report it: a body that does not
#: decompress (RequestPayloadError), a bad chunked stream (HttpProcessingError), a missing or
#: wrong boundary, data after a part's end (ValueError), an unknown part encoding
#: (RuntimeError), a truncated part (EOFError).
_UNREADABLE = (
    web.RequestPayloadError,
    HttpProcessingError,
    ValueError,
    RuntimeError,
    EOFError,
    AssertionError,
)


def body_limit(settings: Settings, method: str, path: str) -> int:
    """The largest body (bytes) a request to *path* may carry (README, "Limits and
    timeouts")."""
    if path.startswith("/webhooks/email/"):
        return settings.max_email_bytes
    if (method, path) in (("PUT", "/api/routing"), ("POST", "/api/plan")):
        return settings.max_document_bytes
    if path in ("/webhooks/chat", "/webhooks/partner/feedback") or path.startswith("/api/"):
        return settings.max_json_bytes
    # Twilio's forms, and every route that reads no body at all
    return settings.max_form_bytes


class BodyRefused(web.HTTPClientError):
    """A 4xx answer ``{"error": message}``, the shape of every JSON error we answer."""

    def __init__(self, status: int, message: str) -> None:
        self.status_code = status  # read by HTTPException.__init__ for the status line
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")
        self.message = message


def _refused(request: web.Request, status: int, message: str, **why: object) -> BodyRefused:
    log.warning("request.body_refused", status=status, error=message, method=request.method, **why)
    return BodyRefused(status, message)


def _too_large(request: web.Request, limit: int) -> BodyRefused:
    return _refused(
        request, 413, f"the body is larger than {limit} bytes, the limit of {request.path}"
    )


@web.middleware
async def refuse_oversized(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 before anything is read when Content-Length is over the route's limit."""
    limit = body_limit(request.app[settings_key], request.method, request.path)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request, limit)
    return await handler(request)


@contextlib.asynccontextmanager
async def _arriving(request: web.Request) -> AsyncIterator[None]:
    """Within the body deadline, broken streams as 400."""
    seconds = request.app[settings_key].body_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise _refused(
            request, 408, f"the body did not arrive within {seconds:g} seconds"
        ) from None
    except _UNREADABLE as exc:
        raise _refused(request, 400, f"the body cannot be read: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


async def body_bytes(request: web.Request) -> bytes:
    """The whole body: within its route's limit (413) and the body deadline (408)."""
    limit = body_limit(request.app[settings_key], request.method, request.path)
    body = bytearray()
    async with _arriving(request):
        while chunk := await request.content.readany():
            body.extend(chunk)
            if len(body) > limit:
                raise _too_large(request, limit)
    return bytes(body)


async def urlencoded_form(request: web.Request) -> MultiDictProxy[str]:
    """An ``application/x-www-form-urlencoded`` body as sent, every value of a repeated
    name kept in order (Twilio signs them all). Twilio posts UTF-8: a form that is not is
    refused (400) rather than guessed, since its signature could not be checked anyway."""
    if request.content_type != FORM_TYPE:
        raise _refused(
            request,
            415,
            f"expected a form ({FORM_TYPE}), got {request.content_type or 'no content type'}",
        )
    charset = (request.charset or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        raise _refused(request, 415, f"expected a UTF-8 form, got charset {charset!r}")
    body = await body_bytes(request)
    try:
        text = body.decode("utf-8")
        fields = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise _refused(request, 400, f"the form is not UTF-8: {_one_line(exc)}") from None
    return MultiDictProxy(MultiDict(fields))


def form_pairs(body: bytes) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of an urlencoded *body* as bytes, ``+`` and ``%XX`` undone,
    in order; never raises. (``urllib.parse.parse_qsl`` on bytes insists on ASCII.)"""
    pairs: list[tuple[bytes, bytes]] = []
    for field in body.split(b"&"):
        if not field.strip():
            continue
        name, _, value = field.partition(b"=")
        pairs.append(
            (
                unquote_to_bytes(name.replace(b"+", b" ")),
                unquote_to_bytes(value.replace(b"+", b" ")),
            )
        )
    return pairs


def _unquoted(data: bytes) -> bytes:
    return unquote_to_bytes(data.replace(b"+", b" "))


@dataclass(frozen=True, slots=True)
class FormPart:
    """One field of a ``multipart/form-data`` body, its bytes exactly as sent (transfer
    encoding undone); *filename* for an upload."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


async def multipart_form(request: web.Request) -> list[FormPart]:
    """The fields of a ``multipart/form-data`` body, read within the route's limit and the
    body deadline; 400 when it is not multipart as sent (no boundary, a broken part)."""
    limit = body_limit(request.app[settings_key], request.method, request.path)
    parts: list[FormPart] = []
    read = 0
    async with _arriving(request):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart: no provider posts one as a field
            data = bytearray()
            while chunk := await part.read_chunk(_CHUNK):
                data.extend(chunk)
                read += len(chunk)
                if read > limit:
                    raise _too_large(request, limit)
            if part.name is None:
                continue
            parts.append(
                FormPart(
                    name=part.name,
                    data=_decoded(part, bytes(data)),
                    filename=part.filename,
                    content_type=part.headers.get(hdrs.CONTENT_TYPE),
                )
            )
    return parts


def _decoded(part: BodyPartReader, data: bytes) -> bytes:
    """*data* with its Content-Transfer-Encoding (base64, quoted-printable) undone, or as it
    came when that fails. A Content-Encoding (gzip, …) is left in place: decompressing it
    here would let a small post grow without bound."""
    encoding = part.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding not in ("", "identity"):
        return data
    try:
        return bytes(part.decode(data))
    except (ValueError, RuntimeError):  # bad base64, an unknown transfer encoding
        return data
