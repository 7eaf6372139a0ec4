"""What the service writes for a contact besides its interaction: outbox rows (forwards) and
the answers given to providers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.core.contact import Channel


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer given to one provider request (provider id + step = path and query)."""

    provider_id: str
    step: str
    body: str


def reply_row(reply: Reply, now: datetime) -> dict[str, Any]:
    return {
        "provider_id": reply.provider_id,
        "step": reply.step,
        "body": reply.body,
        "created_at": now,
    }


def forward_row(
    channel: Channel,
    destination: str,
    address: str,
    external: bool,
    meta: Mapping[str, Any],
    payload: bytes,
    now: datetime,
    *,
    fallback: tuple[str, str, bool] | None = None,
) -> dict[str, Any]:
    """An outbox row due now; *fallback* is (destination, address, external)."""
    return {
        "kind": channel.value,
        "destination": destination,
        "address": address,
        "external": external,
        "fallback": fallback[0] if fallback else None,
        "fallback_address": fallback[1] if fallback else None,
        "fallback_external": fallback[2] if fallback else False,
        "stage": "primary",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "payload": payload,
        "meta": json.dumps(dict(meta)),
        "created_at": now,
        "updated_at": now,
    }
