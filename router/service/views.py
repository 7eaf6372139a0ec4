"""JSON shapes shared by the CLI (``--format json``) and the HTTP API, so they never drift.

Pure: rows and values in, JSON-able dicts out. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from router.core.classify import Classification
from router.service.records import (
    ForwardRecord,
    InteractionRecord,
    PlanStepRecord,
    VersionRecord,
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def version_json(row: VersionRecord) -> dict[str, Any]:
    """A version as ``config history --format json`` prints it."""
    return {
        "version": row.version,
        "kind": row.kind,
        "actor": row.actor,
        "reason": row.reason,
        "created_at": iso(row.created_at),
    }


def change_json(row: VersionRecord) -> dict[str, Any]:
    """A version just made; a timed rollback says until when."""
    data = version_json(row)
    if row.expires_at is not None:
        data["until"] = iso(row.expires_at)
    return data


def interaction_json(row: InteractionRecord) -> dict[str, Any]:
    """Every column, as ``interactions --format json`` prints it."""
    data: dict[str, Any] = asdict(row)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = iso(value)
    return data


def step_json(row: PlanStepRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso(row.due_at),
        "reason": row.reason,
        "cutover": json.loads(row.cutover),
        "status": row.status,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "version": row.version,
    }


def classification_json(result: Classification, language: str | None) -> dict[str, Any]:
    return {
        "category": result.category.value,
        "confidence": result.confidence,
        "language": language,
        "matches": [
            {"rule": m.rule, "category": m.category.value, "weight": m.weight}
            for m in result.matches
        ],
    }


def outbox_json(row: ForwardRecord) -> dict[str, Any]:
    """A forward without its payload (message bodies are not shown)."""
    return {
        "id": row.id,
        "interaction_id": row.interaction_id,
        "kind": row.kind,
        "destination": row.destination,
        "address": row.address,
        "stage": row.stage,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at) if row.delivered_at else None,
    }
