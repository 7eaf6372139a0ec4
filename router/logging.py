"""Structured logging, configured once at start-up (never at import).

Processors are small and pure; one sink writes JSON lines, or a readable console format
when a person is watching. Standard-library loggers (aiohttp, sqlalchemy, alembic, twilio)
go through the same processors via ``ProcessorFormatter``, so every line has one shape.

Whatever a line carries, and in either format, just before it is rendered:

* a traceback is plain text (``format_exc_info``): never a pretty one with local
  variables, which would print request bodies and secrets;
* card numbers are masked (SPEC §6) in every string value, the event and a traceback
  included, nested dicts and lists too (a value with ``&`` also read as HTML, for
  ``4111&nbsp;1111…``); an int, or another value whose ``repr`` shows a card, is replaced
  by its masked text;
* in the console format no value can forge a line or colour one: control characters
  (CR, LF, ESC, …), C1 controls, Unicode line separators and bidi overrides are shown as
  visible stand-ins (``␍``, ``␊``, ``␛``, ``�``), and a traceback's lines are indented
  under the line that carries it. JSON escapes all of these by itself.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from router.core.masking import mask_cards, may_hold_a_card

#: Control characters shown as their Unicode Control Pictures (U+2400…), so a customer's
#: CR/LF cannot start a new line nor an ESC a colour; what has no picture is U+FFFD.
_VISIBLE = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **{code: 0xFFFD for code in range(0x80, 0xA0)},
    **{code: 0xFFFD for code in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}
_VISIBLE_LINES = {code: to for code, to in _VISIBLE.items() if code != 0x0A}
_MULTILINE = ("exception", "stack")  # keys whose value is lines of text by nature
_INDENT = "    "
_CARD_SIZED = 10**12  # an int this large has the 13 digits of a card number
_DEPTH = 8  # nested values masked this deep; deeper ones are shown by their masked repr


def _masked(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_cards(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _CARD_SIZED:
        shown = str(value)
        masked = mask_cards(shown)
        return value if masked == shown else masked
    if value is None or isinstance(value, int | float):
        return value
    if depth < _DEPTH:
        if isinstance(value, dict):
            return {key: _masked(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [_masked(item, depth + 1) for item in value]
    shown = repr(value)  # what either renderer would print of it
    masked = mask_cards(shown)
    return value if masked == shown else masked


def _flat_text(event: EventDict, joiner: str = "\x00") -> str | None:
    """The line's string values in one text, or None when it holds any other kind of value
    but numbers, booleans and None. One scan of it costs less than one per value, and the
    hot path's lines (``contact.routed``) are flat."""
    texts = []
    for value in event.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, int) and abs(value) >= _CARD_SIZED:
            return None  # as long as a card number: looked at on its own
        elif not (value is None or isinstance(value, int | float)):
            return None
    return joiner.join(texts)


def mask_values(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Card numbers masked in every value of the line (SPEC §6)."""
    flat = _flat_text(event)
    # "&": a logged piece of HTML ("4111&nbsp;1111…") can hide a card from the byte scan;
    # it is rare in log values, so the hot path does not pay for it
    if flat is not None and "&" not in flat and not may_hold_a_card(flat):
        return event
    return {key: _masked(value) for key, value in event.items()}


def _visible(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value.translate(_VISIBLE)
    if depth < _DEPTH:
        if isinstance(value, dict):
            return {key: _visible(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [_visible(item, depth + 1) for item in value]
    return value


def one_console_line(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Control characters in values made visible, so a value cannot start a line or colour
    one; a traceback's own lines indented under the line that carries it."""
    flat = _flat_text(event, joiner=" ")
    # isprintable() is False for every character _VISIBLE replaces (and a few more)
    if flat is not None and flat.isprintable():
        return event
    shown = {}
    for key, value in event.items():
        if key in _MULTILINE and isinstance(value, str):
            lines = value.translate(_VISIBLE_LINES).splitlines()
            shown[key] = "\n".join(_INDENT + line for line in lines)
        else:
            shown[key] = _visible(value)
    return shown


def configure_logging(
    *, json: bool | None = None, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to *stream* (stderr); *json* None means "unless a
    tty"."""
    sink = sys.stderr if stream is None else stream
    use_json = (not sink.isatty()) if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sink.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # not cached: reconfiguring (CLI, tests capturing logs) must reach every logger
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # plain text in both formats: a pretty console traceback shows local variables
            structlog.processors.format_exc_info,
            mask_values,
            *([] if use_json else [one_console_line]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(sink)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # access lines duplicate contact.routed and drown it; errors still come through
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
