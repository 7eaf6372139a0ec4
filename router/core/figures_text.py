"""What the figures commands (report, statement, staffing, sla) print alike: a CSV file's
text and the notes under a table. Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

__all__ = ["csv_text", "notes_lines"]


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 text: the *columns* header, then *rows*; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return out.getvalue()


def notes_lines(notes: Sequence[str], *, gap: bool = True) -> list[str]:
    """The "notes:" list under a table (after an empty line with *gap*); none without notes."""
    if not notes:
        return []
    return [*([""] if gap else []), "notes:", *(f"  - {note}" for note in notes)]
