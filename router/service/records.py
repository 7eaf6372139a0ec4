"""The typed rows the service hands to the store for one contact: its interaction, its
forwards (outbox rows) and the answer given to the provider.

Plain frozen dataclasses with enums, so nothing between the service and the store travels as
an untyped dict; :meth:`values` gives the column values the store inserts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from typing import Any

from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.delivery import Stage
from router.core.lifecycle import ForwardStatus, Outcome


class _Row:
    __slots__ = ()

    def values(self) -> dict[str, Any]:
        """Column → value, enums as their stored text."""
        return {
            field.name: _stored(getattr(self, field.name))
            for field in fields(self)  # type: ignore[arg-type]
        }


def _stored(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


@dataclass(frozen=True, slots=True)
class NewInteraction(_Row):
    """One contact as it is first recorded (``interactions``)."""

    channel: Channel
    provider_id: str
    customer_hash: str
    category: Category
    category_source: CategorySource
    rule: str | None
    confidence: float | None
    side: Side
    destination: str
    first_destination: str
    reason: Reason
    version: int
    bucket: float
    language: str | None
    received_at: datetime
    decided_at: datetime
    updated_at: datetime
    outcome: Outcome
    delivery_failed: bool = False
    conversation_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewForward(_Row):
    """A forward due now (``outbox``): the fallback is resolved when it is written."""

    kind: Channel
    destination: str
    address: str
    external: bool
    fallback: str | None
    fallback_address: str | None
    fallback_external: bool
    payload: bytes
    meta: str  # JSON: what the sender needs besides the payload
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    stage: Stage = Stage.PRIMARY
    status: ForwardStatus = ForwardStatus.PENDING
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Reply(_Row):
    """The answer given to one provider request (provider id + step = path and query), kept
    so that a retry of the very same request gets the very same answer."""

    provider_id: str
    step: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Target:
    """Where a forward goes: a destination's name, its address on the channel, and whether
    it is outside the shop (card numbers are masked toward it)."""

    destination: str
    address: str
    external: bool


def new_forward(
    channel: Channel,
    to: Target,
    payload: bytes,
    meta: Mapping[str, Any],
    now: datetime,
    *,
    fallback: Target | None = None,
) -> NewForward:
    return NewForward(
        kind=channel,
        destination=to.destination,
        address=to.address,
        external=to.external,
        fallback=fallback.destination if fallback else None,
        fallback_address=fallback.address if fallback else None,
        fallback_external=fallback.external if fallback else False,
        payload=payload,
        meta=json.dumps(dict(meta)),
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
