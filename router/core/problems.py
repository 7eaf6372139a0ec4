"""Problems named by path: the one way every validation error is reported.

The routing document, plan files, the settings and the API's bodies and queries are all
validated by pydantic; :func:`problems_of` turns its ``ValidationError`` into
:class:`Problem` values (``cutover.phone.admin: input should be less than or equal to
100``), so an operator reads the same kind of message wherever the input came from.

Pure: no I/O, and nothing but pydantic is imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["UNKNOWN_KEY", "Problem", "dotted", "problems_of"]

UNKNOWN_KEY = "unknown key"
#: pydantic's own wording for these is about Python ("Extra inputs are not permitted",
#: "an instance of PlanStep"); operators write YAML, JSON and environment variables.
_PLAIN = {
    "missing": "required",
    "extra_forbidden": UNKNOWN_KEY,
    "unexpected_keyword_argument": UNKNOWN_KEY,  # the same, on a dataclass
    "model_type": "expected a mapping (a JSON object)",
    "dataclass_type": "expected a mapping (a JSON object)",
}

#: pydantic's marker, in an error's location, for a problem with a mapping's key.
_KEY = "[key]"


class Problem(NamedTuple):
    """One reason an input is rejected: where (a dotted path) and what."""

    path: str
    message: str


def problems_of(error: ValidationError, data: object, *, root: str) -> list[Problem]:
    """*error* (from validating *data*) as one Problem per error, in pydantic's order.

    An error may carry its own finer problems in its context (``problems``: pairs of a
    path below the error's location and a message), as one custom error standing for
    several; each becomes a Problem of its own. *root* is the path of the input as a
    whole (``(document)``, ``(plan)``, ``(body)``).
    """
    found: list[Problem] = []
    for item in error.errors(include_url=False):
        found.extend(_expanded(item, data, root))
    return found


def _expanded(item: ErrorDetails, data: object, root: str) -> Iterator[Problem]:
    path, on_key = dotted(item["loc"], data)
    finer = (item.get("ctx") or {}).get("problems")
    if finer is not None:
        for sub_path, message in finer:
            yield Problem(_joined(path, sub_path) or root, message)
        return
    message = _message(item)
    yield Problem(path or root, f"invalid key: {message}" if on_key else message)


#: Bounds and choices, said with the value that broke them ("must be at most 100, not 150"):
#: the operator sees what they wrote next to what is allowed.
_BOUNDS = {
    "less_than_equal": ("le", "must be at most"),
    "less_than": ("lt", "must be below"),
    "greater_than_equal": ("ge", "must be at least"),
    "greater_than": ("gt", "must be above"),
}


def _shown(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    return repr(value)


def _message(item: ErrorDetails) -> str:
    kind = item["type"]
    plain = _PLAIN.get(kind)
    if plain is not None:
        return plain
    context = item.get("ctx") or {}
    if kind in _BOUNDS and _BOUNDS[kind][0] in context:
        bound, wording = _BOUNDS[kind]
        return f"{wording} {_shown(context[bound])}, not {_shown(item['input'])}"
    if kind == "enum" and "expected" in context:
        return f"{_shown(item['input'])} is not one of {context['expected']}"
    message = item["msg"].removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _joined(path: str, sub_path: str) -> str:
    if not path or not sub_path or sub_path.startswith("["):
        return f"{path}{sub_path}"
    return f"{path}.{sub_path}"


def dotted(loc: tuple[int | str, ...], data: object) -> tuple[str, bool]:
    """``("classifier", "rules", 2, "weight")`` -> ``"classifier.rules[2].weight"``, and
    whether the problem is with a mapping's key rather than its value.

    The location is walked through *data* because pydantic gives a list index and an
    integer mapping key (YAML's unquoted ``420:``) alike: only a list index is written
    ``[2]``. The empty location (the input as a whole) gives the empty path.
    """
    text = ""
    on_key = False
    node: object = data
    for part in loc:
        if part == _KEY:
            on_key = True
            continue
        if isinstance(part, int) and isinstance(node, list | tuple):
            text += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
            continue
        text += f".{part}" if text else str(part)
        node = node.get(part) if isinstance(node, Mapping) else None
    return text, on_key
