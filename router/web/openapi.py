"""The OpenAPI 3.1 description of the operators' API, published at ``/api/openapi.json``.

Everything that describes the API to its callers lives here: the :class:`Operation` records
(path, method, least role, body, query, answer, extra statuses), the bearer security scheme
and the answer schemas, which are written by hand. Request schemas are not: they come from
the pydantic models the handlers validate with, so what is published is what is enforced.

Pure: builds a dict and does no I/O. It must not import ``router.web.api`` (which imports
this module and owns the route table the operations come from) nor aiohttp.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from router.core.contact import Category, Channel
from router.core.document import RoutingDocument
from router.core.report import Report
from router.service.records import InteractionRecord
from router.service.tokens import Role

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
SCHEMAS = "#/components/schemas/"
KINDS = ["apply", "cutover", "rollback", "resume", "plan", "revert"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint as the outside sees it."""

    method: str
    path: str
    summary: str
    answer: str  # component schema of the 200 answer
    role: Role | None = None  # the least role; None: no token needed
    body: type[BaseModel] | str | None = None  # a request model, or a component schema name
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # statuses beyond the ones every guarded operation has
    if_match: bool = False  # needs If-Match (428 without)
    etag: bool = False  # the answer carries the current version's ETag
    description: str = ""


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def openapi_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The whole OpenAPI document for *operations*."""
    schemas = dict(answer_schemas())
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        for model in (operation.body, operation.query):
            if isinstance(model, type):
                schemas.update(model_schemas(model))
        paths.setdefault(operation.path, {})[operation.method.lower()] = operation_object(operation)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchboard operators' API",
            "version": API_VERSION,
            "description": (
                "Routing status, routing documents (versioned, with ETags), cut-over, "
                "rollback, resume, plans, the classifier, recorded interactions and the "
                "contacts-and-costs report. "
                "Bearer tokens (`switchboard token create`) with roles "
                "viewer < operator < admin; every change is recorded with the token's name "
                "as actor."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `switchboard token create NAME --role ROLE`.",
                }
            },
            "responses": standard_responses(),
        },
    }


def model_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """*model*'s JSON schema and the schemas it refers to, as components."""
    schema = model.model_json_schema(by_alias=True, ref_template=SCHEMAS + "{model}")
    nested: dict[str, Any] = schema.pop("$defs", {})
    return {**nested, model.__name__: schema}


# -- operations ------------------------------------------------------------------------------


def operation_object(operation: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operationId": operation_id(operation),
        "summary": operation.summary,
        "parameters": parameters(operation),
        "responses": responses(operation),
    }
    if operation.description:
        result["description"] = operation.description
    if operation.role is None:
        result["security"] = []
    else:
        result["security"] = [{"bearer": []}]
        result["x-switchboard-role"] = operation.role.value
        result["description"] = (
            f"{operation.description}\n\nLeast role: `{operation.role.value}`."
        ).strip()
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body_name(operation.body))}},
        }
    return result


def operation_id(operation: Operation) -> str:
    words = [part for part in operation.path.split("/") if part and part != "api"]
    cleaned = "_".join(word.replace(".", "_").replace("-", "_") for word in words)
    return f"{operation.method.lower()}_{cleaned}"


def body_name(body: type[BaseModel] | str) -> str:
    return body if isinstance(body, str) else body.__name__


def parameters(operation: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if operation.query is not None:
        schema = operation.query.model_json_schema(by_alias=True, ref_template=SCHEMAS + "{model}")
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameter = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                parameter["description"] = prop["description"]
            found.append({**parameter, "schema": prop})
    if operation.if_match:
        found.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": True,
                "description": 'The ETag of the version the document was edited from, e.g. "12".',
                "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
            }
        )
    return found


def responses(operation: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {"application/json": {"schema": ref(operation.answer)}},
    }
    if operation.etag:
        ok["headers"] = {
            "ETag": {
                "description": "The current routing version, quoted; send it back as If-Match.",
                "schema": {"type": "string"},
            }
        }
    answers: dict[str, Any] = {"200": ok}
    for status in error_statuses(operation):
        answers[str(status)] = {"$ref": f"#/components/responses/{status}"}
    return answers


def error_statuses(operation: Operation) -> list[int]:
    statuses = set(operation.errors)
    if operation.role is not None:
        statuses |= {401, 503}
        if operation.role is not Role.VIEWER:
            statuses.add(403)
    if operation.body is not None or operation.query is not None:
        statuses.add(422)
    if operation.if_match:
        statuses |= {409, 428}
    return sorted(statuses)


# -- answers ---------------------------------------------------------------------------------

_ERROR_TEXT = {
    401: "No token, or an unknown or revoked one (answered with `WWW-Authenticate: Bearer`).",
    403: "The token's role is too weak for this operation.",
    404: "No such routing version.",
    409: "Conflicts with the routing in force: a stale If-Match, routing changed meanwhile, "
    "nothing to resume, or no routing version stored yet.",
    422: "The body or the query is invalid; every problem is listed by path.",
    428: "If-Match is required: send the ETag of the version the document was edited from.",
    503: "The database is unavailable; nothing was changed.",
}


def standard_responses() -> dict[str, Any]:
    return {
        str(status): {
            "description": text,
            "content": {
                "application/json": {"schema": ref("Invalid" if status == 422 else "Error")}
            },
        }
        for status, text in _ERROR_TEXT.items()
    }


def _object(properties: Mapping[str, Any], *, required: Iterable[str] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required)}


def _strings(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_SHARES = {
    "type": "object",
    "description": "channel -> category -> percentage of customers on target routing",
    "properties": {
        channel.value: _object(
            {
                category.value: {"type": "number", "minimum": 0, "maximum": 100}
                for category in Category
            }
        )
        for channel in Channel
    },
}
_VERSION_FIELDS = {
    "version": {"type": "integer"},
    "kind": _strings(KINDS),
    "actor": {"type": "string", "description": "the token name, CLI user, scheduler or guard"},
    "reason": {"type": "string"},
    "created_at": _TIME,
}
_ROLLBACK = _object(
    {
        "version": {"type": "integer"},
        "reason": {"type": "string"},
        "actor": {"type": "string"},
        "since": _TIME,
        "until": _NULLABLE_TIME,
        "channel": {"type": ["string", "null"]},
        "restores": {"type": ["integer", "null"]},
    },
    required=["reason", "actor", "since", "until"],
)
_PLAN_STEP = _object(
    {
        "id": {"type": "integer"},
        "at": _TIME,
        "reason": {"type": "string"},
        "cutover": {"$ref": SCHEMAS + "PlanShares"},
        "created_by": {"type": "string"},
        "created_at": _TIME,
    },
    required=["id", "at", "reason", "cutover"],
)


def answer_schemas() -> dict[str, Any]:
    """The hand-written schemas of what the API answers (and of the plan it takes)."""
    return {
        "Error": _object({"error": {"type": "string"}}, required=["error"]),
        "Problem": _object(
            {"path": {"type": "string"}, "message": {"type": "string"}},
            required=["path", "message"],
        ),
        "Invalid": _object(
            {"error": {"type": "string"}, "problems": {"type": "array", "items": ref("Problem")}},
            required=["error", "problems"],
        ),
        "Version": _object(_VERSION_FIELDS, required=list(_VERSION_FIELDS)),
        "History": {"type": "array", "items": ref("Version")},
        "Change": _object(
            {
                **_VERSION_FIELDS,
                "until": {**_TIME, "description": "when a timed rollback ends by itself"},
                "changed": {
                    "type": "boolean",
                    "description": "PUT /api/routing only: false when the document equals "
                    "the current one (nothing stored)",
                },
            },
            required=list(_VERSION_FIELDS),
        ),
        "Shares": _SHARES,
        "Status": {
            **_object(
                {
                    **_VERSION_FIELDS,
                    "cutover": ref("Shares"),
                    "rollback": {"oneOf": [_ROLLBACK, {"type": "null"}]},
                    "rollback_return_cancelled": {"type": ["object", "null"]},
                    "plan": {"type": "array", "items": {"type": "object"}},
                    "partner_conversations": {"type": "array", "items": {"type": "object"}},
                },
                required=["version", "cutover", "rollback"],
            ),
            "additionalProperties": True,
        },
        **model_schemas(RoutingDocument),
        "Diff": {
            "type": "array",
            "items": _object(
                {"path": {"type": "string"}, "from": {}, "to": {}},
                required=["path", "from", "to"],
            ),
            "description": "leaf-level differences; from/to are null where a leaf is absent",
        },
        "Impact": _object(
            {
                "dry_run": {"const": True},
                "version": {"type": "integer", "description": "the version compared against"},
                "contacts": {"type": "integer", "description": "recorded contacts replayed"},
                "moved": {
                    "type": "object",
                    "description": "channel -> day -> contacts that would go elsewhere",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                },
                "moves": {
                    "type": "object",
                    "description": 'channel -> "from -> to" -> contacts',
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                },
            },
            required=["dry_run", "version", "contacts", "moved", "moves"],
        ),
        "CutoverResult": {"oneOf": [ref("Change"), ref("Impact")]},
        "Classification": _object(
            {
                "category": _strings(category.value for category in Category),
                "confidence": {"type": "number"},
                "language": {"type": ["string", "null"]},
                "matches": {
                    "type": "array",
                    "items": _object(
                        {
                            "rule": {"type": "string"},
                            "category": {"type": "string"},
                            "weight": {"type": "number"},
                        },
                        required=["rule", "category", "weight"],
                    ),
                },
            },
            required=["category", "confidence", "language", "matches"],
        ),
        "Interaction": TypeAdapter(InteractionRecord).json_schema(mode="serialization"),
        "Interactions": {"type": "array", "items": ref("Interaction")},
        "Traffic": _object(
            {
                "since": {**_TIME, "description": "start of the first hour (UTC)"},
                "until": {**_TIME, "description": "end of the last hour (the current one)"},
                "hours": {"type": "integer"},
                "destinations": {
                    "type": "object",
                    "description": "destination -> external | in_house | unknown (renamed); "
                    '"" (kind none) counts the calls abandoned in the IVR menu',
                    "additionalProperties": _strings(["external", "in_house", "unknown", "none"]),
                },
                "buckets": {
                    "type": "array",
                    "description": "every hour of the window, oldest first, empty ones too",
                    "items": _object(
                        {
                            "start": _TIME,
                            "counts": {
                                "type": "object",
                                "description": "destination -> channel -> contacts",
                                "additionalProperties": {
                                    "type": "object",
                                    "additionalProperties": {"type": "integer"},
                                },
                            },
                        },
                        required=["start", "counts"],
                    ),
                },
            },
            required=["since", "until", "hours", "destinations", "buckets"],
        ),
        **model_schemas(Report),
        "PlanShares": {
            "type": "object",
            "description": "channel -> category -> percent; only the shares named change",
            "propertyNames": _strings(channel.value for channel in Channel),
            "additionalProperties": {
                "type": "object",
                "propertyNames": _strings(category.value for category in Category),
                "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
            },
        },
        "Plan": {
            "type": "array",
            "minItems": 1,
            "items": {
                **_object(
                    {
                        "at": {**_TIME, "description": "ISO 8601 with a UTC offset"},
                        "reason": {"type": "string", "minLength": 1},
                        "cutover": ref("PlanShares"),
                    },
                    required=["at", "reason", "cutover"],
                ),
                "additionalProperties": False,
            },
        },
        "PlanStep": _PLAN_STEP,
        "PlanSteps": {"type": "array", "items": ref("PlanStep")},
        "PlanScheduled": _object(
            {"scheduled": {"type": "array", "items": ref("PlanStep")}}, required=["scheduled"]
        ),
        "PlanCancelled": _object({"cancelled": {"type": "integer"}}, required=["cancelled"]),
        "OpenApi": {"type": "object", "description": "this document"},
    }
