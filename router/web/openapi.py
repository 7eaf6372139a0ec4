"""The OpenAPI 3.1 description of the operators' API, published at ``/api/openapi.json``.

Everything that describes the API to its callers lives here: the :class:`Operation` records
(path, method, least role, body, query, answer, extra statuses) and the bearer security
scheme. No schema is written by hand: requests are described by the pydantic models the
handlers validate with, and answers by the models ``router.service.views`` builds every
answer from, so what is published is what is enforced and what is answered.

Pure: builds a dict and does no I/O. It must not import ``router.web.api`` (which imports
this module and owns the route table the operations come from) nor aiohttp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, RootModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from router.service.tokens import Role
from router.service.views import Error, Invalid

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
SCHEMAS = "#/components/schemas/"


class OpenApi(RootModel[dict[str, Any]]):
    """This document."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint as the outside sees it."""

    method: str
    path: str
    summary: str
    #: What the 200 answer validates as: a model, ``list[Model]``, a union of models.
    answer: Any
    role: Role | None = None  # the least role; None: no token needed
    body: Any = None  # what the request body validates as, like answer; None: no body
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None  # the {names} in the path
    errors: tuple[int, ...] = ()  # statuses beyond the ones every guarded operation has
    if_match: bool = False  # needs If-Match (428 without)
    etag: bool = False  # the answer carries the current version's ETag
    description: str = ""
    #: other media types the 200 may have, as text (``text/csv`` with ``format=csv``)
    text_answers: tuple[str, ...] = ()
    link: bool = False  # a full page's answer carries Link: <…>; rel="next"
    #: the header a full page's answer names the next page's ``before`` in (a POST search)
    next_before: str | None = None


def ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def openapi_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The whole OpenAPI document for *operations*."""
    payloads, definitions = payload_schemas(operations)
    schemas = dict(definitions)
    paths: dict[str, dict[str, Any]] = {}
    for index, operation in enumerate(operations):
        if operation.query is not None:
            schemas.update(model_schemas(operation.query))
        item = operation_object(
            operation, payloads[("answer", index)], payloads.get(("body", index))
        )
        paths.setdefault(operation.path, {})[operation.method.lower()] = item
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchboard operators' API",
            "version": API_VERSION,
            "description": (
                "Routing status, routing documents (versioned, with ETags), cut-over, "
                "rollback, resume, plans, the classifier, recorded interactions, the "
                "contacts-and-costs report, the hotline's staffing and the partner's "
                "service levels. "
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


Key = tuple[str, int]


def payload_schemas(
    operations: Sequence[Operation],
) -> tuple[dict[Key, dict[str, Any]], dict[str, Any]]:
    """The schema of every answer (``("answer", i)``) and request body (``("body", i)``),
    with the models they refer to, which become components.

    One pass over all of them, so a model used in several places (Change, Channel) is one
    component. Answers are described as they validate: the same JSON read back by the
    model that wrote it."""
    inputs: list[tuple[Key, JsonSchemaMode, TypeAdapter[Any]]] = [
        (("error", 0), "validation", TypeAdapter(Error)),
        (("error", 1), "validation", TypeAdapter(Invalid)),
    ]
    for index, operation in enumerate(operations):
        inputs.append((("answer", index), "validation", TypeAdapter(operation.answer)))
        if operation.body is not None:
            inputs.append((("body", index), "validation", TypeAdapter(operation.body)))
    keyed, definitions = TypeAdapter.json_schemas(
        inputs, by_alias=True, ref_template=SCHEMAS + "{model}"
    )
    schemas = {key: schema for (key, _), schema in keyed.items()}
    return schemas, definitions.get("$defs", {})


def model_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """*model*'s JSON schema and the schemas it refers to, as components."""
    schema = model.model_json_schema(by_alias=True, ref_template=SCHEMAS + "{model}")
    nested: dict[str, Any] = schema.pop("$defs", {})
    return {**nested, model.__name__: schema}


# -- operations ------------------------------------------------------------------------------


def operation_object(
    operation: Operation, answer: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operationId": operation_id(operation),
        "summary": operation.summary,
        "parameters": parameters(operation),
        "responses": responses(operation, answer),
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
    if body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return result


def operation_id(operation: Operation) -> str:
    words = [part for part in operation.path.split("/") if part and part != "api"]
    cleaned = "_".join(word.replace(".", "_").replace("-", "_") for word in words)
    return f"{operation.method.lower()}_{cleaned}"


def parameters(operation: Operation) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if operation.path_params is not None:
        schema = operation.path_params.model_json_schema(by_alias=True)
        for name, prop in schema.get("properties", {}).items():
            parameter = {"name": name, "in": "path", "required": True, "schema": prop}
            if "description" in prop:
                parameter["description"] = prop["description"]
            found.append(parameter)
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


def responses(operation: Operation, answer: dict[str, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK", "content": {"application/json": {"schema": answer}}}
    for media_type in operation.text_answers:
        ok["content"][media_type] = {"schema": {"type": "string"}}
    headers: dict[str, Any] = {}
    if operation.etag:
        headers["ETag"] = {
            "description": "The current routing version, quoted; send it back as If-Match.",
            "schema": {"type": "string"},
        }
    if operation.link:
        headers["Link"] = {
            "description": 'On a full page: `<the same query with before=ID>; rel="next"`.',
            "schema": {"type": "string"},
        }
    if operation.next_before is not None:
        headers[operation.next_before] = {
            "description": "On a full page: the id to send as `before` for the next page.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    if headers:
        ok["headers"] = headers
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
    if operation.body is not None or operation.query is not None or operation.path_params:
        statuses.add(422)
    if operation.body is not None:
        statuses |= {400, 408, 413}  # router/web/bodies.py: unreadable, too slow, too large
    if operation.if_match:
        statuses |= {409, 428}
    return sorted(statuses)


# -- answers ---------------------------------------------------------------------------------

_ERROR_TEXT = {
    401: "No token, or an unknown or revoked one (answered with `WWW-Authenticate: Bearer`).",
    403: "The token's role is too weak for this operation.",
    400: "The body cannot be read (a broken chunked or compressed stream).",
    404: "No such routing version or interaction.",
    408: "The body did not arrive within SWITCHBOARD_BODY_TIMEOUT.",
    413: "The body is larger than this operation's limit (SWITCHBOARD_MAX_JSON_BYTES, or "
    "SWITCHBOARD_MAX_DOCUMENT_BYTES for a routing document or a plan).",
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
                "application/json": {"schema": ref((Invalid if status == 422 else Error).__name__)}
            },
        }
        for status, text in _ERROR_TEXT.items()
    }
