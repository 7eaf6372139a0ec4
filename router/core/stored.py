"""How a routing version is stored, in the two rules the lean CLI (router/cli/lean.py) must
share with the full path: the canonical document text, and where a rollback returns to.
Standard library only, so the lean rollback can import it.
"""

from __future__ import annotations

import json
from datetime import datetime


def canonical_json(data: object) -> str:
    """Sorted keys, no spaces: equal documents give equal text (ETags, stored versions)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def return_point(version: int, kind: str, restores: int | None, expires_at: datetime | None) -> int:
    """The version a rollback made on top of *version* brings back on resume. A rollback
    during a timed rollback keeps that one's return point; a rollback "for good" is itself
    the state to come back to, so a later timed rollback (the guard's) never undoes it."""
    if kind == "rollback" and restores is not None and expires_at:
        return restores
    return version
