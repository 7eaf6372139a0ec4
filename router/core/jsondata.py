"""JSON from outside: every body we are sent (chat, partner feedback, Postmark, the API)
is read here, so "not JSON" is one kind of error however the text is broken.

``json.loads`` raises ValueError for bad syntax or encoding but RecursionError for deep
nesting (``[`` 100,000 times), and a structure that it did manage to build a few hundred
levels deep still breaks what comes next (``json.dumps``, the YAML reader, a recursive
walk). No message we accept is nested more than a handful of levels, so anything deeper
than :data:`MAX_DEPTH` is refused here, as a ValueError like any other bad JSON.

Pure: bytes or text in, a value or ValueError out.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_VALUES", "check_parsed", "parse_json"]

#: Deepest nesting of lists and objects accepted. A routing document is six levels deep
#: (``destinations.hotline.hours.closed[0]``); the rest of what we are sent fewer.
MAX_DEPTH = 32
#: Most lists, objects and scalars in one value. A routing document holds hundreds; YAML
#: aliases can make a short text stand for billions (``a: &a [x, x]``, ``b: &b [*a, *a]``,
#: …), which every later walk would expand.
MAX_VALUES = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(data: bytes | str, **options: Any) -> object:
    """The JSON value in *data*; ValueError (with the reason) when it is not JSON or is
    nested deeper than :data:`MAX_DEPTH`. *options* go to :func:`json.loads`
    (``object_pairs_hook``, …)."""
    try:
        value: object = json.loads(data, **options)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError as exc:  # a ValueError, but its text runs to many lines
        raise ValueError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    check_parsed(value)
    return value


def check_parsed(value: object) -> None:
    """ValueError when *value* (parsed JSON or YAML) nests lists and objects more than
    :data:`MAX_DEPTH` deep, holds more than :data:`MAX_VALUES` values, or a string with a
    lone surrogate (``"\\ud800"`` is valid JSON syntax, but no text: it cannot be encoded
    to be stored, logged or forwarded). Walks without recursion, and stops at the first
    excess, so a YAML alias bomb costs no more than :data:`MAX_VALUES` steps."""
    stack: list[tuple[object, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ValueError(f"more than {MAX_VALUES} values")
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), not text")
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)
