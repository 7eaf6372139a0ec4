"""How ``switchboard interactions show`` prints one contact for people: the row, then the
attempts, feedback, recordings and forwards as small tables. Pure: the JSON of
``InteractionDetail`` (router/service/views.py) in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

JSON = dict[str, Any]

#: The row's fields in the order an operator reads them: what was decided, then what became
#: of it.
_FIELDS = (
    ("channel", "channel"),
    ("provider_id", "provider id"),
    ("customer_hash", "customer (hash)"),
    ("received_at", "received"),
    ("decided_at", "decided"),
    ("category", "category"),
    ("category_source", "decided by"),
    ("rule", "rule"),
    ("confidence", "confidence"),
    ("language", "language"),
    ("version", "routing version"),
    ("bucket", "bucket"),
    ("side", "side"),
    ("first_destination", "first destination"),
    ("destination", "destination"),
    ("reason", "reason"),
    ("outcome", "outcome"),
    ("delivery_failed", "delivery failed"),
    ("dial_status", "dial status"),
    ("fallback_status", "fallback status"),
    ("call_status", "call status"),
    ("duration_seconds", "call seconds"),
    ("handle_seconds", "talk seconds"),
    ("conversation_id", "conversation"),
    ("updated_at", "updated"),
)


def render_detail(detail: JSON) -> str:
    row = detail["interaction"]
    lines = [f"interaction #{row['id']}"]
    width = max(len(label) for _, label in _FIELDS)
    for key, label in _FIELDS:
        value = row.get(key)
        if value is not None and value != "":
            lines.append(f"  {label:<{width}}  {value}")
    lines.append("")
    lines.append("attempts:")
    lines.extend(
        _table(
            ("at", "kind", "#", "destination", "address", "status", "seconds", "error"),
            [
                (
                    a["at"],
                    a["kind"],
                    a["number"],
                    a["destination"],
                    a["address"],
                    a["status"],
                    a["seconds"],
                    a["error"],
                )
                for a in detail["attempts"]
            ],
        )
    )
    feedback = detail["feedback"]
    lines.append("")
    if feedback is None:
        lines.append("partner feedback: none")
    else:
        rating = "" if feedback["rating"] is None else f", rating {feedback['rating']}"
        lines.append(f"partner feedback: {feedback['outcome']}{rating} at {feedback['at']}")
        if feedback["comment"]:
            lines.append(f"  {feedback['comment']}")
    lines.append("")
    lines.append("recordings:")
    lines.extend(
        _table(
            ("at", "kind", "seconds", "url"),
            [(r["at"], r["kind"], r["seconds"], r["url"]) for r in detail["recordings"]],
        )
    )
    lines.append("")
    lines.append("forwards:")
    lines.extend(
        _table(
            ("#", "kind", "destination", "address", "stage", "status", "attempts", "last error"),
            [
                (
                    f["id"],
                    f["kind"],
                    f["destination"],
                    f["address"],
                    f["stage"],
                    f["status"],
                    f["attempts"],
                    f["last_error"],
                )
                for f in detail["forwards"]
            ],
        )
    )
    return "\n".join(lines)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    return lines


def _cell(value: object) -> str:
    return "" if value is None else str(value)
