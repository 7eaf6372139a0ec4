"""The operators' HTTP API under ``/api/`` (SPEC §5): JSON in, JSON out, bearer tokens.

This module owns the HTTP side of operating Switchboard: the route table with each
endpoint's least role, authentication, request bodies and query strings (pydantic models:
every problem by path, 422), the mapping of service errors to status codes, and the JSON
shape of the answers. Decisions and changes are made by ``router.service`` and
``router.core.migration``; a handler is parse → one service call → JSON.

It must not import ``integrations/`` or open database sessions itself (``router.store``
only for its row types and errors).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import structlog
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from router.core.classify import classify
from router.core.contact import Category, Channel, searched_customer_key
from router.core.document import (
    DocumentInvalid,
    RoutingDocument,
    diff_documents,
    document_data,
    validate_document,
)
from router.core.durations import parse_duration, parse_since
from router.core.jsondata import parse_json
from router.core.lifecycle import Outcome
from router.core.migration import MigrationError, Plan, PlanInvalid, parse_plan
from router.core.prices import TooManyDays
from router.core.problems import Problem, problems_of
from router.core.report import DEFAULT_SINCE, Report
from router.core.report import csv_filename as report_csv_filename
from router.core.report import render_csv as render_report_csv
from router.core.report import render_days_csv as render_report_days_csv
from router.core.sla import DEFAULT_SINCE as SLA_SINCE
from router.core.sla import Sla
from router.core.sla import csv_filename as sla_csv_filename
from router.core.sla import render_csv as render_sla_csv
from router.core.staffing import DEFAULT_SINCE as STAFFING_SINCE
from router.core.staffing import (
    DEFAULT_TARGET,
    Staffing,
    StaffingError,
    csv_filename,
    parse_target,
    render_csv,
)
from router.core.statement import Statement, parse_month
from router.core.statement import csv_filename as statement_csv_filename
from router.core.statement import render_csv as render_statement_csv
from router.core.traffic import MAX_HOURS
from router.service.archive import find_interactions, interaction_detail
from router.service.ports import DatabaseUnavailable, StaleVersion
from router.service.queries import (
    contacts_per_hour,
    contacts_report,
    hotline_staffing,
    month_statement,
    partner_sla,
    routing_status,
)
from router.service.queries import cutover_preview as service_cutover_preview
from router.service.records import (
    MAX_ROW_INTEGER,
    InteractionSearch,
    TokenRecord,
    VersionRecord,
)
from router.service.scheduler import schedule_plan
from router.service.tokens import Role, authenticate
from router.service.versions import (
    NoRouting,
    NothingToResume,
    apply_document,
    cutover,
    resume,
    revert,
    rollback,
    stored_document,
)
from router.service.views import (
    STATUS_CONVERSATIONS,
    Change,
    Classification,
    Diff,
    Impact,
    InteractionDetail,
    PlanCancelled,
    PlanScheduled,
    RecordedInteraction,
    ScheduledStep,
    Status,
    Traffic,
    Version,
    change_json,
    classification_json,
    diff_json,
    error_json,
    step_json,
    traffic_json,
    version_json,
)
from router.store import Store
from router.web.appkeys import clock_key, customer_secret_key, routing_key, store_key, wake_key
from router.web.bodies import body_bytes
from router.web.openapi import OpenApi, Operation, openapi_document

log = structlog.get_logger(__name__)

BODY_PATH = "(body)"  # the path of a problem with the body (or query) as a whole
ALL = "all"
#: The answer header of a full page of ``POST /api/interactions/search``: the ``before`` of
#: the next page (the POST has no URL to name it in, as the GET's Link header does).
NEXT_BEFORE = "X-Next-Before"
#: The largest whole number a query or body may carry (the database's integer): above it
#: no version or row can exist; it is also the "no cap" of a limit.
MAX_INT = MAX_ROW_INTEGER
DEFAULT_PUT_REASON = "applied through the API"
#: How long a change waits for this process to route by the new version before answering.
ADOPT_SECONDS = 1.0

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=StrEnum)
ApiHandler = Callable[[web.Request, TokenRecord], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- errors ----------------------------------------------------------------------------------


class ApiError(Exception):
    """An answer other than 200, with a JSON body ``{"error", "problems"?}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        problems: Sequence[Problem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.headers = headers

    def response(self) -> web.Response:
        body = error_json(self.message, self.problems)
        return web.json_response(body, status=self.status, headers=self.headers)


_OUTAGES = (DatabaseUnavailable,)
_MAPPED = (
    ApiError,
    DocumentInvalid,
    PlanInvalid,
    MigrationError,
    NoRouting,
    NothingToResume,
    StaleVersion,
    *_OUTAGES,
)


def api_error(exc: Exception) -> ApiError:
    """The answer for an error the service layer raised (one of ``_MAPPED``)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DocumentInvalid):
        return ApiError(422, "not a valid routing document", problems=exc.problems)
    if isinstance(exc, PlanInvalid):
        return ApiError(422, "not a valid plan", problems=exc.problems)
    if isinstance(exc, MigrationError):
        return ApiError(422, str(exc), problems=[Problem(BODY_PATH, str(exc))])
    if isinstance(exc, StaleVersion):
        return ApiError(409, f"{exc}; read the routing again and retry")
    if isinstance(exc, NoRouting | NothingToResume):
        return ApiError(409, str(exc))
    log.error("api.database_unavailable", error=str(exc), error_type=type(exc).__name__)
    return ApiError(503, "the database is unavailable; nothing was changed, retry later")


# -- authentication --------------------------------------------------------------------------

_CHALLENGE = 'Bearer realm="switchboard"'


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticated(request: web.Request, needed: Role) -> TokenRecord:
    """The caller's live token, if its role allows *needed*; else 401 or 403."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401,
            "send a token: Authorization: Bearer <token> (see `switchboard token create`)",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    record = await authenticate(request.app[store_key], token)
    if record is None:
        log.warning("api.token_refused", method=request.method)
        raise ApiError(
            401,
            "unknown or revoked token",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    structlog.contextvars.bind_contextvars(actor=record.name)
    if not Role(record.role).allows(needed):
        log.warning("api.forbidden", method=request.method, role=record.role, needed=needed.value)
        raise ApiError(
            403,
            f"token {record.name!r} has role {record.role}; "
            f"{request.method} {request.path} needs {needed.value} or stronger",
        )
    return record


def guarded(needed: Role, handler: ApiHandler) -> Handler:
    """*handler* behind a bearer token of at least *needed*, with errors answered as JSON."""

    @functools.wraps(handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            token = await authenticated(request, needed)
            return await handler(request, token)
        except _MAPPED as exc:
            return api_error(exc).response()

    return endpoint


# -- request parsing -------------------------------------------------------------------------


def validated(model: type[M], data: object, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = problems_of(error, data, root=BODY_PATH)
        raise ApiError(422, f"invalid {what}", problems=problems) from error


async def json_body(request: web.Request) -> object:
    try:
        return parse_json(await body_bytes(request))
    except ValueError as exc:  # also not UTF-8, nested too deep
        raise ApiError(
            422, "the body is not JSON", problems=[Problem(BODY_PATH, f"not JSON: {exc}")]
        ) from exc


async def body_of(request: web.Request, model: type[M]) -> M:
    return validated(model, await json_body(request), "request body")


def query_of(request: web.Request, model: type[M]) -> M:
    return validated(model, dict(request.query), "query parameters")


# -- request models --------------------------------------------------------------------------


class Body(BaseModel):
    """A request body or query: unknown keys are refused, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _reason(value: str) -> str:
    if not value.strip():
        raise ValueError("give a reason: it is kept in the audit trail")
    return value.strip()


def _one_or_all(enum: type[E], what: str) -> Callable[[object], E | None]:
    known = ", ".join([*(member.value for member in enum), ALL])

    def parse(value: object) -> E | None:
        if value == ALL:
            return None
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return enum(value)
        raise ValueError(f"unknown {what} {value!r} (known: {known})")

    return parse


def _enum_schema(enum: type[StrEnum], description: str) -> WithJsonSchema:
    values = [member.value for member in enum]
    return WithJsonSchema({"type": "string", "enum": [*values, ALL], "description": description})


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as 90s, 15m, 24h or 2d")
    return parse_duration(value)


def _since(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("use an ISO 8601 time or a duration (24h, 7d)")
    parse_since(value, datetime.now(UTC))  # checked here, resolved against the app's clock
    return value


AuditReason = Annotated[
    str,
    Field(
        strict=True,
        description="Why: kept in the audit trail.",
        json_schema_extra={"minLength": 1},
    ),
    AfterValidator(_reason),
]
ChannelOrAll = Annotated[
    Channel | None,
    PlainValidator(_one_or_all(Channel, "channel")),
    _enum_schema(Channel, "A channel, or all of them."),
]
CategoryOrAll = Annotated[
    Category | None,
    PlainValidator(_one_or_all(Category, "category")),
    _enum_schema(Category, "A category, or all of them."),
]
Duration = Annotated[
    timedelta,
    PlainValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": "^0*[1-9][0-9]{0,5}[smhd]$", "examples": ["24h"]}),
]
Since = Annotated[
    str,
    PlainValidator(_since),
    WithJsonSchema(
        {
            "type": "string",
            "description": "An ISO 8601 time, or a duration back from now (24h, 7d).",
            "examples": ["24h", "2026-11-23T08:00:00+01:00"],
        }
    ),
]
Percent = Annotated[
    float,
    Field(strict=True, ge=0, le=100, allow_inf_nan=False, description="0-100 % on target"),
]


class CutoverRequest(Body):
    channel: ChannelOrAll
    category: CategoryOrAll
    percent: Percent
    reason: AuditReason
    dry_run: bool = Field(
        default=False, strict=True, description="Change nothing; answer the impact instead."
    )
    days: int = Field(
        default=7, strict=True, ge=1, le=366, description="Dry run: days of contacts to replay."
    )


class RollbackRequest(Body):
    reason: AuditReason
    channel: ChannelOrAll = Field(default=None, json_schema_extra={"default": ALL})
    for_: Duration | None = Field(
        default=None,
        alias="for",
        description="A timed (incident) rollback: the routing from before returns after this.",
    )


class ResumeRequest(Body):
    reason: AuditReason


class RevertRequest(Body):
    version: int = Field(
        strict=True, ge=1, le=MAX_INT, description="The version whose document returns."
    )
    reason: AuditReason


class ClassifyRequest(Body):
    text: str = Field(strict=True, max_length=100_000)
    lang: str | None = Field(default=None, strict=True, pattern=r"^[a-z]{2,3}$")


class RoutingQuery(Body):
    reason: AuditReason = DEFAULT_PUT_REASON


class StatusQuery(Body):
    conversations: Annotated[int, Field(ge=1, le=MAX_INT)] | Literal["all"] = Field(
        default=STATUS_CONVERSATIONS,
        description="How many of the conversations the partner still holds to list, newest "
        "first, or `all`; `partner_conversations_count` counts them all.",
    )


class DocumentQuery(Body):
    version: int | None = Field(default=None, ge=1, le=MAX_INT, description="A past version.")


class HistoryQuery(Body):
    limit: int | None = Field(default=None, ge=1, le=MAX_INT)


class DiffQuery(Body):
    from_: int = Field(alias="from", ge=1, le=MAX_INT, description="A version number.")
    to: int = Field(ge=1, le=MAX_INT, description="A version number.")


def _customer(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a phone number, an email address or a chat customer id")
    return searched_customer_key(value)


Customer = Annotated[
    str,
    PlainValidator(_customer),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A phone number (+420601234567), an email address or a chat "
            "customer id: matched by its keyed hash, never stored or logged.",
            "examples": ["+420601234567", "jana@example.com"],
        }
    ),
]


class InteractionFilters(Body):
    """What the archive is searched by, as a query string (GET) or a body (POST)."""

    since: Since | None = None
    channel: Channel | None = None
    customer: Customer | None = None
    provider_id: str | None = Field(
        default=None, min_length=1, max_length=1000, description="CallSid, Message-ID, …"
    )
    destination: str | None = Field(default=None, min_length=1, max_length=200)
    category: Category | None = None
    outcome: Outcome | None = None


class InteractionsQuery(InteractionFilters):
    """``GET /api/interactions``: the filters as query parameters."""

    # A query string is part of the URL, which reverse proxies and load balancers log:
    # the description sends whoever reads the document to the POST for a customer search.
    customer: Customer | None = Field(
        default=None,
        description="Travels in the URL, which proxies and load balancers log: to keep the "
        "customer's number or address out of URLs and logs, send it in the body of "
        "POST /api/interactions/search instead.",
    )
    before: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="Only the contacts after this one, newest first (by received time, "
        "then id): the previous page's last id, which its Link header's rel=next names.",
    )
    limit: int = Field(
        default=100, ge=1, le=MAX_INT, description="No upper cap (but the database's integer)."
    )


class InteractionsSearch(InteractionFilters):
    """``POST /api/interactions/search``: the GET's filters as a JSON body, so that nothing
    searched for (a customer's number or address above all) is in a URL."""

    customer: Customer | None = Field(
        default=None,
        description="In the body, so it stays out of URLs and of the logs of proxies and "
        "load balancers.",
    )
    # strict, as every number of an API body: "5" or true is a mistake, not a limit
    before: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=MAX_INT,
        description="Only the contacts after this one, newest first: the previous page's "
        f"{NEXT_BEFORE} header names it.",
    )
    limit: int = Field(
        default=100,
        strict=True,
        ge=1,
        le=MAX_INT,
        description="No upper cap (but the database's integer).",
    )


class InteractionPath(Body):
    id: int = Field(ge=1, le=MAX_INT, description="The interaction's id.")


class TrafficQuery(Body):
    hours: int = Field(default=24, ge=1, le=MAX_HOURS, description="Whole hours, the current last.")


class ReportQuery(Body):
    since: Since = Field(
        default=DEFAULT_SINCE,
        description="Start of the period: an ISO 8601 time or a duration back from now.",
    )
    until: Since | None = Field(
        default=None,
        description="End of the period (exclusive), written like since [default: now].",
    )
    format_: Literal["json", "csv"] = Field(
        default="json",
        alias="format",
        description="csv: a file download, the per-destination figures (or, with "
        "per_day=true, the per-day series).",
    )
    per_day: bool = Field(
        default=False,
        description="With format=csv: the per-day series (contacts by category per day of "
        "the routing timezone) instead of the per-destination figures.",
    )

    @field_validator("per_day")
    @classmethod
    def _per_day_is_a_csv_table(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("format_") != "csv":
            raise ValueError(
                "per_day chooses the CSV table: give format=csv too (the JSON "
                "always carries the days)"
            )
        return value


def _month(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a month is a string such as 2026-11")
    parse_month(value)  # checked here, parsed by the handler
    return value


MonthText = Annotated[
    str,
    PlainValidator(_month),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}$",
            "description": "YYYY-MM, a month of the routing timezone.",
            "examples": ["2026-11"],
        }
    ),
]


class StatementQuery(Body):
    month: MonthText | None = Field(
        default=None,
        description="The month (YYYY-MM) [default: the previous month in the routing timezone].",
    )
    format_: Literal["json", "csv"] = Field(
        default="json",
        alias="format",
        description="csv: the lines as a file download (one row per line).",
    )


class SlaQuery(Body):
    since: Since = Field(
        default=SLA_SINCE,
        description="Start of the period of contacts received: an ISO 8601 time or a "
        "duration back from now.",
    )
    until: Since | None = Field(
        default=None,
        description="End of the period (exclusive), written like since [default: now].",
    )
    format_: Literal["json", "csv"] = Field(
        default="json",
        alias="format",
        description="csv: the rows as a file download (one line per destination, channel "
        "and target).",
    )


def _target(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a target is a string such as 80/20")
    parse_target(value)  # checked here, parsed by the handler
    return value


StaffingTarget = Annotated[
    str,
    PlainValidator(_target),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?/[0-9]+s?$",
            "description": "PERCENT/SECONDS: answer PERCENT % of calls within SECONDS s.",
            "examples": ["80/20"],
        }
    ),
]


class StaffingQuery(Body):
    since: Since = Field(
        default=STAFFING_SINCE,
        description="Start of the period of recorded calls: an ISO 8601 time or a duration "
        "back from now. Both ends are rounded down to whole hours of the routing timezone.",
    )
    until: Since | None = Field(
        default=None,
        description="End of the period (exclusive), written like since [default: now].",
    )
    target: StaffingTarget = DEFAULT_TARGET
    patience: Duration | None = Field(
        default=None,
        description="Callers' mean patience (60s): Erlang A, callers hang up when kept waiting. "
        "Without it Erlang C: nobody hangs up.",
    )
    format_: Literal["json", "csv"] = Field(
        default="json",
        alias="format",
        description="csv: the hours as a file download (one line per scenario and hour).",
    )


# -- answers ---------------------------------------------------------------------------------


def etag(version: int) -> str:
    return f'"{version}"'


async def in_force_here(app: web.Application, version: int) -> None:
    """Wake the routing follower and wait, briefly, until this process routes by *version*:
    the operator's next contact already follows the change. Other replicas follow within a
    second by themselves; if this one is slow the version is committed all the same."""
    app[wake_key].set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ADOPT_SECONDS):
            await app[routing_key].wait_for(version)


async def changed(
    request: web.Request, token: TokenRecord, row: VersionRecord, *, changed: bool | None = None
) -> web.Response:
    log.info(
        "api.change",
        actor=token.name,
        method=request.method,
        path=request.path,
        version=row.version,
        kind=row.kind,
    )
    await in_force_here(request.app, row.version)
    body = change_json(row, changed=changed)
    return web.json_response(body, headers={"ETag": etag(row.version)})


# -- handlers --------------------------------------------------------------------------------


def now_of(request: web.Request) -> datetime:
    return request.app[clock_key]()


async def current_row(store: Store) -> VersionRecord:
    row = await store.current_version()
    if row is None:
        raise NoRouting("the database holds no routing version yet")
    return row


async def document_at(store: Store, number: int) -> RoutingDocument:
    row = await store.version(number)
    if row is None:
        raise ApiError(404, f"there is no version {number}")
    return stored_document(row)


def if_match(request: web.Request) -> int:
    """The version named by If-Match (``"12"``); 428 when absent or not one of our ETags."""
    header = request.headers.get("If-Match", "").strip()
    match = re.fullmatch(r'"([0-9]{1,18})"', header)
    if match is None:
        raise ApiError(
            428,
            'send If-Match with the ETag of the version you edited (GET /api/routing), e.g. "12"'
            + (f"; {header!r} is not one" if header else ""),
        )
    return int(match.group(1))


async def get_status(request: web.Request, token: TokenRecord) -> web.Response:
    listed = query_of(request, StatusQuery).conversations
    status = await routing_status(
        request.app[store_key],
        now_of(request),
        conversations=None if listed == "all" else listed,
    )
    return web.json_response(status)


async def get_routing(request: web.Request, token: TokenRecord) -> web.Response:
    """The current document with its ETag, or with ``?version=N`` a past one."""
    number = query_of(request, DocumentQuery).version
    store = request.app[store_key]
    if number is not None:
        return web.json_response(document_data(await document_at(store, number)))
    row = await current_row(store)
    document = document_data(stored_document(row))
    return web.json_response(document, headers={"ETag": etag(row.version)})


async def put_routing(request: web.Request, token: TokenRecord) -> web.Response:
    expected = if_match(request)
    reason = query_of(request, RoutingQuery).reason
    document = validate_document(await json_body(request))
    store = request.app[store_key]
    row = await apply_document(
        store,
        document,
        actor=token.name,
        reason=reason,
        now=now_of(request),
        expected_current=expected,
    )
    if row is None:
        current = await current_row(store)
        body = change_json(current, changed=False)
        return web.json_response(body, headers={"ETag": etag(current.version)})
    return await changed(request, token, row, changed=True)


async def get_history(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, HistoryQuery)
    rows = await request.app[store_key].history(query.limit)
    return web.json_response([version_json(row) for row in rows])


async def get_diff(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, DiffQuery)
    store = request.app[store_key]
    old, new = await document_at(store, query.from_), await document_at(store, query.to)
    return web.json_response(diff_json(diff_documents(old, new)))


async def post_revert(request: web.Request, token: TokenRecord) -> web.Response:
    body = await body_of(request, RevertRequest)
    try:
        row = await revert(
            request.app[store_key],
            body.version,
            actor=token.name,
            reason=body.reason,
            now=now_of(request),
        )
    except LookupError as exc:
        raise ApiError(404, str(exc)) from exc
    return await changed(request, token, row)


async def post_cutover(request: web.Request, token: TokenRecord) -> web.Response:
    body = await body_of(request, CutoverRequest)
    if body.dry_run:
        return await cutover_preview(request, body)
    row = await cutover(
        request.app[store_key],
        body.channel,
        body.category,
        body.percent,
        actor=token.name,
        reason=body.reason,
        now=now_of(request),
    )
    return await changed(request, token, row)


async def cutover_preview(request: web.Request, body: CutoverRequest) -> web.Response:
    """What the cut-over would have changed over the last *days*; nothing is stored."""
    preview = await service_cutover_preview(
        request.app[store_key],
        body.channel,
        body.category,
        body.percent,
        days=body.days,
        now=now_of(request),
    )
    return web.json_response(preview)


async def post_rollback(request: web.Request, token: TokenRecord) -> web.Response:
    body = await body_of(request, RollbackRequest)
    row = await rollback(
        request.app[store_key],
        actor=token.name,
        reason=body.reason,
        now=now_of(request),
        channel=body.channel,
        duration=body.for_,
    )
    return await changed(request, token, row)


async def post_resume(request: web.Request, token: TokenRecord) -> web.Response:
    body = await body_of(request, ResumeRequest)
    row = await resume(
        request.app[store_key], actor=token.name, reason=body.reason, now=now_of(request)
    )
    return await changed(request, token, row)


async def post_classify(request: web.Request, token: TokenRecord) -> web.Response:
    body = await body_of(request, ClassifyRequest)
    active = request.app[routing_key].active
    min_confidence = active.document.classifier.min_confidence
    result = classify(body.text, active.classifier, body.lang, min_confidence=min_confidence)
    return web.json_response(classification_json(result, body.lang or result.language))


async def get_interactions(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, InteractionsQuery)
    rows = await interactions_found(request, query)
    headers = {}
    if len(rows) == query.limit:  # maybe more: the next page starts below the last id
        following = request.rel_url.update_query(before=str(rows[-1]["id"]))
        headers["Link"] = f'<{following}>; rel="next"'
    return web.json_response(rows, headers=headers)


async def post_interactions_search(request: web.Request, token: TokenRecord) -> web.Response:
    """The GET's search with the filters in the body: a customer's key in a query string
    would be in every proxy's access log (SPEC §6: the raw key is never kept)."""
    body = await body_of(request, InteractionsSearch)
    rows = await interactions_found(request, body)
    headers = {}
    if len(rows) == body.limit:  # as the GET's Link, without a URL to put the filters in
        headers[NEXT_BEFORE] = str(rows[-1]["id"])
    return web.json_response(rows, headers=headers)


async def interactions_found(
    request: web.Request, filters: InteractionsQuery | InteractionsSearch
) -> list[dict[str, Any]]:
    """One page of what *filters* name, newest first, as ``interactions --format json``."""
    since = parse_since(filters.since, now_of(request)) if filters.since is not None else None
    search = InteractionSearch(
        since=since,
        channel=filters.channel.value if filters.channel is not None else None,
        provider_id=filters.provider_id,
        destination=filters.destination,
        category=filters.category.value if filters.category is not None else None,
        outcome=filters.outcome.value if filters.outcome is not None else None,
        before=filters.before,
        limit=filters.limit,
    )
    return await find_interactions(
        request.app[store_key],
        search,
        customer_key=filters.customer,
        secret=request.app[customer_secret_key],
    )


async def get_interaction(request: web.Request, token: TokenRecord) -> web.Response:
    number = validated(InteractionPath, dict(request.match_info), "path").id
    detail = await interaction_detail(request.app[store_key], number)
    if detail is None:
        raise ApiError(404, f"there is no interaction {number}")
    return web.json_response(detail)


async def get_traffic(request: web.Request, token: TokenRecord) -> web.Response:
    hours = query_of(request, TrafficQuery).hours
    traffic = await contacts_per_hour(request.app[store_key], now_of(request), hours)
    return web.json_response(traffic_json(traffic))


async def get_report(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, ReportQuery)
    since, until = _period(query.since, query.until, now_of(request))
    try:
        report = await contacts_report(request.app[store_key], since=since, until=until)
    except TooManyDays as exc:
        raise ApiError(
            422, "invalid query parameters", problems=[Problem("since", str(exc))]
        ) from exc
    if query.format_ == "csv":
        return _csv_download(
            render_report_days_csv(report) if query.per_day else render_report_csv(report),
            report_csv_filename(report, per_day=query.per_day),
        )
    return web.json_response(report.model_dump(mode="json"))


def _csv_download(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def get_statement(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, StatementQuery)
    month = None if query.month is None else parse_month(query.month)
    statement = await month_statement(request.app[store_key], month=month, now=now_of(request))
    if query.format_ == "csv":
        return _csv_download(render_statement_csv(statement), statement_csv_filename(statement))
    return web.json_response(statement.model_dump(mode="json"))


def _period(since_text: str, until_text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """[since, until) of a query, already checked one by one; 422 when empty."""
    since = parse_since(since_text, now)
    until = parse_since(until_text, now) if until_text is not None else now
    if since >= until:
        raise ApiError(
            422,
            "invalid query parameters",
            problems=[
                Problem(
                    "until" if until_text is not None else "since",
                    f"the period is empty: since {since.isoformat()} is not before "
                    f"until {until.isoformat()}",
                )
            ],
        )
    return since, until


async def get_staffing(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, StaffingQuery)
    since, until = _period(query.since, query.until, now_of(request))
    try:
        staffing = await hotline_staffing(
            request.app[store_key],
            since=since,
            until=until,
            target=parse_target(query.target),
            patience=query.patience,
        )
    except StaffingError as exc:
        raise ApiError(
            422, "invalid query parameters", problems=[Problem("since", str(exc))]
        ) from exc
    if query.format_ == "csv":
        return _csv_download(render_csv(staffing), csv_filename(staffing))
    return web.json_response(staffing.model_dump(mode="json"))


async def get_sla(request: web.Request, token: TokenRecord) -> web.Response:
    query = query_of(request, SlaQuery)
    since, until = _period(query.since, query.until, now_of(request))
    sla = await partner_sla(request.app[store_key], since=since, until=until)
    if query.format_ == "csv":
        return web.Response(
            text=render_sla_csv(sla),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{sla_csv_filename(sla)}"'},
        )
    return web.json_response(sla.model_dump(mode="json"))


async def get_plan(request: web.Request, token: TokenRecord) -> web.Response:
    steps = await request.app[store_key].plan_steps()
    return web.json_response([step_json(step) for step in steps])


async def post_plan(request: web.Request, token: TokenRecord) -> web.Response:
    # parse_plan reads YAML, and JSON is YAML: the file format and the API share one parser
    steps = parse_plan(json.dumps(await json_body(request)))
    rows = await schedule_plan(request.app[store_key], steps, actor=token.name, now=now_of(request))
    log.info("api.change", actor=token.name, method="POST", path=request.path, steps=len(rows))
    return web.json_response({"scheduled": [step_json(row) for row in rows]})


async def delete_plan(request: web.Request, token: TokenRecord) -> web.Response:
    cancelled = await request.app[store_key].cancel_plan_steps(now_of(request))
    log.info("api.change", actor=token.name, method="DELETE", path=request.path, steps=cancelled)
    return web.json_response({"cancelled": cancelled})


@functools.cache
def published_openapi() -> dict[str, Any]:
    return openapi_document([operation for operation, _ in ROUTES] + [OPENAPI])


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(published_openapi())


# -- the route table -------------------------------------------------------------------------

OPENAPI = Operation("GET", "/api/openapi.json", "This document (no token needed)", OpenApi)

ROUTES: list[tuple[Operation, ApiHandler]] = [
    (
        Operation(
            "GET",
            "/api/status",
            "Routing in force",
            Status,
            Role.VIEWER,
            query=StatusQuery,
            errors=(409,),
        ),
        get_status,
    ),
    (
        Operation(
            "GET",
            "/api/routing",
            "The current routing document (shape of routing.yaml), or a past version's",
            RoutingDocument,
            Role.VIEWER,
            query=DocumentQuery,
            errors=(404, 409),
            etag=True,
        ),
        get_routing,
    ),
    (
        Operation(
            "PUT",
            "/api/routing",
            "Make a document current as a new version",
            Change,
            Role.ADMIN,
            body=RoutingDocument,
            query=RoutingQuery,
            if_match=True,
            etag=True,
            description="Answers `changed: false` when the document equals the current one.",
        ),
        put_routing,
    ),
    (
        Operation(
            "GET",
            "/api/routing/history",
            "Every version, newest first",
            list[Version],
            Role.VIEWER,
            query=HistoryQuery,
        ),
        get_history,
    ),
    (
        Operation(
            "GET",
            "/api/routing/diff",
            "What changes from one version to another",
            Diff,
            Role.VIEWER,
            query=DiffQuery,
            errors=(404,),
        ),
        get_diff,
    ),
    (
        Operation(
            "POST",
            "/api/routing/revert",
            "Make an earlier version's document current again",
            Change,
            Role.ADMIN,
            body=RevertRequest,
            errors=(404, 409),
        ),
        post_revert,
    ),
    (
        Operation(
            "POST",
            "/api/cutover",
            "Set a cut-over share, or preview its impact (dry_run)",
            Change | Impact,
            Role.OPERATOR,
            body=CutoverRequest,
            errors=(409,),
        ),
        post_cutover,
    ),
    (
        Operation(
            "POST",
            "/api/rollback",
            "Every share (of one channel, or all) to 0 at once",
            Change,
            Role.OPERATOR,
            body=RollbackRequest,
            errors=(409,),
        ),
        post_rollback,
    ),
    (
        Operation(
            "POST",
            "/api/resume",
            "Bring back the routing from before the rollback",
            Change,
            Role.OPERATOR,
            body=ResumeRequest,
            errors=(409,),
        ),
        post_resume,
    ),
    (
        Operation(
            "POST",
            "/api/classify",
            "Classify a text, explained",
            Classification,
            Role.VIEWER,
            body=ClassifyRequest,
        ),
        post_classify,
    ),
    (
        Operation(
            "GET",
            "/api/interactions",
            "What was routed where, and why (newest first)",
            list[RecordedInteraction],
            Role.VIEWER,
            query=InteractionsQuery,
            description="Filters combine; newest (received, then id) first. A full page carries "
            '`Link: <…&before=ID>; rel="next"`: the next page, stable while contacts arrive. '
            "A query string is part of the URL, which proxies and load balancers log: to "
            "search by customer, `POST /api/interactions/search` takes the same filters in "
            "its body and keeps the number or address out of URLs and logs.",
            link=True,
        ),
        get_interactions,
    ),
    (
        Operation(
            "POST",
            "/api/interactions/search",
            "What was routed where, and why (newest first): the filters in the body",
            list[RecordedInteraction],
            Role.VIEWER,
            body=InteractionsSearch,
            description="Answers what `GET /api/interactions` answers for the same filters, "
            "which travel in the body: a customer's phone number or email address stays out "
            "of URLs, and so out of the access logs of proxies and load balancers. A full "
            f"page carries `{NEXT_BEFORE}: ID`: send the same body with `before: ID` for "
            "the next page, stable while contacts arrive.",
            next_before=NEXT_BEFORE,
        ),
        post_interactions_search,
    ),
    (
        Operation(
            "GET",
            "/api/interactions/{id}",
            "Everything about one contact: decision, attempts, feedback, recordings, forwards",
            InteractionDetail,
            Role.VIEWER,
            path_params=InteractionPath,
            errors=(404,),
        ),
        get_interaction,
    ),
    (
        Operation(
            "GET",
            "/api/traffic",
            "Contacts per hour by destination and channel (the console's chart)",
            Traffic,
            Role.VIEWER,
            query=TrafficQuery,
        ),
        get_traffic,
    ),
    (
        Operation(
            "GET",
            "/api/report",
            "Contacts per channel, destination and category over a period, and their cost",
            Report,
            Role.VIEWER,
            query=ReportQuery,
            errors=(409,),
            description="Each handled contact is priced with the `costs` of the routing "
            "version in force on its day (routing timezone); a contact is billable (handled) "
            "when a call was answered or an email or chat delivered (a voicemail is not). "
            "`format=csv` answers `text/csv` as a file download: the per-destination "
            "figures, or with `per_day=true` the per-day series.",
            text_answers=("text/csv",),
        ),
        get_report,
    ),
    (
        Operation(
            "GET",
            "/api/statement",
            "A month's handled contacts at external destinations, priced line by line",
            Statement,
            Role.VIEWER,
            query=StatementQuery,
            errors=(409,),
            description="Per external destination and channel, the days at one price "
            "(the routing version in force on each day of the routing timezone), handled "
            "contacts, unit price and amount rounded to the cent; voicemails counted apart "
            "(not billed). `format=csv` answers `text/csv` as a file download.",
            text_answers=("text/csv",),
        ),
        get_statement,
    ),
    (
        Operation("GET", "/api/plan", "Pending plan steps", list[ScheduledStep], Role.VIEWER),
        get_plan,
    ),
    (
        Operation(
            "POST",
            "/api/plan",
            "Schedule plan steps (executed by the service)",
            PlanScheduled,
            Role.ADMIN,
            body=Plan,
        ),
        post_plan,
    ),
    (
        Operation("DELETE", "/api/plan", "Cancel every pending step", PlanCancelled, Role.ADMIN),
        delete_plan,
    ),
    (
        Operation(
            "GET",
            "/api/staffing",
            "Agents the in-house hotline needs per hour of the week (Erlang C or A)",
            Staffing,
            Role.VIEWER,
            query=StaffingQuery,
            errors=(409,),
            description="Recorded calls replayed through the routing in force (current) and "
            "through its baseline (all_in_house); handle times from the answered calls' "
            "DialCallDuration. `format=csv` answers `text/csv` as a file download.",
            text_answers=("text/csv",),
        ),
        get_staffing,
    ),
    (
        Operation(
            "GET",
            "/api/sla",
            "The partner's service levels against the routing's sla: targets",
            Sla,
            Role.VIEWER,
            query=SlaQuery,
            errors=(409,),
            description="Answer rate, time to answer (p80), resolution rate and average "
            "rating per external destination and channel over the contacts received in the "
            "period, against the targets of the routing in force now; a figure without data "
            "is null with the verdict `no data`. Without an sla section the rows are empty "
            "and a note says so. `format=csv` answers `text/csv` as a file download.",
            text_answers=("text/csv",),
        ),
        get_sla,
    ),
]


def add_routes(app: web.Application) -> None:
    app.router.add_get(OPENAPI.path, get_openapi)
    for operation, handler in ROUTES:
        assert operation.role is not None, operation.path
        app.router.add_route(operation.method, operation.path, guarded(operation.role, handler))
