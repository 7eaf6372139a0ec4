"""Contacts per hour, per destination and channel: the web console's traffic chart and
``GET /api/traffic``. Pure: counts in (as the store aggregates them), JSON-ready values out.

Every hour of the window gets a bucket, also the empty ones, so a chart has no gaps to
guess about; the hour in progress is the last one. Destinations are listed with their kind
(``external`` / ``in_house``) from the routing in force, and a destination that received
contacts but is no longer in the document is kept, as ``unknown``: old traffic is not
hidden by a later rename. Calls abandoned in the IVR menu have no destination: they are
counted under ``""``, of kind ``none``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from router.core.contact import Channel
from router.core.document import RoutingDocument

__all__ = ["MAX_HOURS", "Traffic", "hourly", "window"]

#: The longest window asked for at once (a month of hourly buckets).
MAX_HOURS = 24 * 31
_HOUR = timedelta(hours=1)


def window(now: datetime, hours: int) -> tuple[datetime, datetime]:
    """[since, until) covering *hours* whole UTC hours, the current one last."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be 1-{MAX_HOURS}, not {hours}")
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return current - (hours - 1) * _HOUR, current + _HOUR


@dataclass(frozen=True, slots=True)
class Traffic:
    since: datetime
    until: datetime
    destinations: dict[str, str]  # name -> external | in_house | unknown | none
    buckets: list[tuple[datetime, dict[str, dict[str, int]]]]  # hour -> dest -> channel -> n

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "hours": len(self.buckets),
            "destinations": self.destinations,
            "buckets": [
                {"start": start.isoformat(), "counts": counts} for start, counts in self.buckets
            ],
        }


def hourly(
    counts: Iterable[tuple[datetime, str, str, int]],
    document: RoutingDocument,
    since: datetime,
    until: datetime,
) -> Traffic:
    """*counts* (hour start, channel, destination, contacts) spread over the hours of
    [*since*, *until*)."""
    hours: dict[datetime, dict[str, dict[str, int]]] = {}
    moment = since
    while moment < until:
        hours[moment] = {}
        moment += _HOUR
    kinds = {
        name: "external" if document.is_external(name) else "in_house"
        for name in document.destinations
    }
    for start, channel, destination, contacts in counts:
        bucket = hours.get(start.astimezone(UTC))
        if bucket is None or contacts <= 0:
            continue
        kinds.setdefault(destination, "none" if not destination else "unknown")
        per_channel = bucket.setdefault(destination, {c.value: 0 for c in Channel})
        per_channel[channel] = per_channel.get(channel, 0) + contacts
    return Traffic(since, until, kinds, list(hours.items()))
