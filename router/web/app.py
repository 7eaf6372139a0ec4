"""The aiohttp application: resources, middleware, health, and the route table.

Resources are created in ``cleanup_ctx`` generators so teardown runs exactly when set-up
ran. The database may be down at start: the service starts anyway on the last-known
routing, answers calls safely, and keeps trying to reach the database in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from integrations.chat import ChatSender
from integrations.smtp import SmtpSender
from router.core.delivery import Schedule
from router.metrics import Metrics
from router.service.outbox import OutboxWorker
from router.service.ports import DatabaseUnavailable, Sender
from router.service.readiness import Readiness
from router.service.recording import settled
from router.service.retention import RetentionSchedule
from router.service.routing import ActiveRouting, RoutingState, last_known, remember
from router.service.scheduler import run_due_work
from router.service.versions import ensure_initial_routing
from router.settings import Settings, customer_key_secret
from router.store import ROUTING_CHANNEL, Store, create_engine, listen_parameters, migrate
from router.store.uow import database_errors
from router.web import api as web_api
from router.web import chat as web_chat
from router.web import console as web_console
from router.web import email as web_email
from router.web import partner as web_partner
from router.web import voice as web_voice
from router.web.appkeys import (
    Clock,
    clock_key,
    customer_secret_key,
    http_client_key,
    metrics_key,
    outbox_wake_key,
    outbox_worker_key,
    readiness_key,
    routing_key,
    settings_key,
    smtp_sender_key,
    store_key,
    wake_key,
)
from router.web.bodies import refuse_oversized

log = structlog.get_logger(__name__)

#: How often a running service looks for a new routing version (SPEC §4: in force ≤ 1 s).
#: On SQLite nothing else tells it, and the on-call person's CLI rollback waits for this poll.
#: A poll costs about 1.3 ms of CPU: an idle service measured 3.2 % of a core at 100 ms
#: against 2.4 % at 250 ms.
POLL_SECONDS = 0.1
#: Due work (SPEC §4: within 2 s of its time) runs at most this often, however often a
#: change wakes the loop.
DUE_WORK_SECONDS = 0.5
# a scrape reads the outbox's depth; a slow database must not hang the scraper
SCRAPE_QUERY_SECONDS = 2.0
#: /readyz answers within this (the platform probes it often, and must not hang on it) ...
READY_PROBE_SECONDS = 2.0
#: ... and probes the database at most this often, however often it is asked.
READY_FRESH_SECONDS = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the caller's X-Request-Id, or a new one) to every log line."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id, path=request.path)
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        structlog.contextvars.clear_contextvars()


async def prepare_database(app: web.Application, *, report: bool = True) -> bool:
    """Migrate, make sure a routing version exists and load it; False on an outage (logged
    when *report*: the routing follower tries every 100 ms and says it once)."""
    store = app[store_key]
    try:
        async with database_errors(None):
            await migrate.upgrade(store.engine)
        row = await ensure_initial_routing(store, app[clock_key]())
        active = ActiveRouting.from_row(row)
    except DatabaseUnavailable as exc:
        if report:
            log.error("database.unavailable", error=str(exc))
        return False
    app[routing_key].use(active)
    remember(active, app[settings_key].var_dir)
    return True


async def refresh_routing(app: web.Application) -> None:
    """Load the newest stored version if it is not the one in force here."""
    store, state = app[store_key], app[routing_key]
    newest = await store.latest_version_number()
    if newest == state.active.version:
        return
    row = await store.version(newest)
    if row is None:
        return
    active = ActiveRouting.from_row(row)
    state.use(active)
    remember(active, app[settings_key].var_dir)


async def follow_routing(app: web.Application) -> None:
    """Pick up new routing versions, whoever committed them (CLI, API, other replicas), and
    run due work (plan steps, a timed rollback's return, the guard).

    Polling every 100 ms is the safety net; on PostgreSQL a NOTIFY wakes the loop at once.
    Every replica runs the due work; the store makes each change happen once."""
    state = app[routing_key]
    wake = app[wake_key]
    listener = PostgresListener(app[settings_key].database_url, wake)
    days = app[settings_key].retention_days
    retention = RetentionSchedule(days) if days else None
    healthy = state.from_database
    loop = asyncio.get_running_loop()
    due_work_at = loop.time()
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_SECONDS)
            wake.clear()
            try:
                if not state.from_database:
                    # started on the last-known routing: the start has said the database
                    # is unavailable; say when it is back, not every 100 ms that it is not
                    if await prepare_database(app, report=False):
                        log.info("database.available")
                        healthy = True
                    continue
                await listener.ensure()
                await refresh_routing(app)
                if loop.time() >= due_work_at:
                    due_work_at = loop.time() + DUE_WORK_SECONDS
                    made = await run_due_work(app[store_key], app[clock_key](), retention=retention)
                    if made:
                        await refresh_routing(app)
                if not healthy:
                    log.info("database.available")
                    healthy = True
            except DatabaseUnavailable as exc:
                if healthy:
                    log.error("database.unavailable", error=str(exc))
                    healthy = False
            except Exception:  # a bad stored document must not stop routing updates for good
                log.exception("routing.refresh_failed")
    finally:
        await listener.close()
        if retention is not None:
            await retention.close()


class PostgresListener:
    """LISTEN for new routing versions on PostgreSQL (a no-op on SQLite); after the server
    went away, listens again once it is back, trying at most every RETRY_SECONDS (polling
    covers the gap meanwhile). It connects as the engine does (router/store/engine.py
    ``listen_parameters``): with several hosts, to the one that takes writes, which after a
    failover is the new primary, where the NOTIFYs of new versions are sent."""

    RETRY_SECONDS = 1.0

    def __init__(self, database_url: str, wake: asyncio.Event) -> None:
        self._parameters = listen_parameters(database_url)
        self._wake = wake
        self._connection: asyncpg.Connection | None = None
        self._next_attempt = 0.0

    async def ensure(self) -> None:
        if self._parameters is None or (self._connection and not self._connection.is_closed()):
            return
        if time.monotonic() < self._next_attempt:
            return
        self._next_attempt = time.monotonic() + self.RETRY_SECONDS
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(**self._parameters, timeout=5)
            await connection.add_listener(ROUTING_CHANNEL, self._notified)
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,  # no host takes writes (TargetServerAttributeNotMatched)
        ) as exc:
            log.warning("routing.listen_failed", error=str(exc) or type(exc).__name__)
            if connection is not None:
                connection.terminate()
            return
        self._connection = connection
        log.info("routing.listening", channel=ROUTING_CHANNEL)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    for warning in settings.warnings:
        log.warning(
            "settings.problem",
            problem=warning,
            hint="an invalid value is replaced by its default; a short secret or half of the "
            "SMTP credentials is used as given, but should be fixed",
        )
    engine = create_engine(
        settings.database_url,
        timeout_seconds=settings.db_timeout_seconds,
        pool_size=settings.db_pool_size,
    )
    store = app[store_key] = Store(engine, timeout_seconds=settings.db_timeout_seconds)
    writable = app[metrics_key].database_writable
    app[readiness_key] = Readiness(
        store.writable,
        timeout_seconds=min(READY_PROBE_SECONDS, settings.db_timeout_seconds),
        fresh_seconds=READY_FRESH_SECONDS,
        observe=lambda ok: writable.set(1 if ok else 0),
    )
    app[routing_key] = RoutingState(
        last_known(settings.var_dir),
        from_database=False,
        observe=app[metrics_key].routing_version.set,
    )
    if not await prepare_database(app):
        log.warning(
            "routing.last_known_in_use",
            version=app[routing_key].active.version,
            hint="calls get a safe <Dial>; email and chat answer 503 until the database is back",
        )
    yield
    # units of work callers stopped waiting for end (or are given up) before the engine goes
    await settled(settings.db_timeout_seconds)
    group_commit = app[store_key].group_commit
    if group_commit is not None:  # the last contacts' commit, before the engine goes
        try:
            await asyncio.wait_for(group_commit.finished(), settings.db_timeout_seconds)
        except TimeoutError:
            log.error("store.writer_not_finished", hint="its transaction is rolled back")
    await engine.dispose()


async def routing_follower(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(follow_routing(app), name="follow-routing")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database can be written now (not merely read: a SQLite file locked by
    another process still reads) and a stored routing version is loaded. Answers within
    READY_PROBE_SECONDS; the database is probed at most every READY_FRESH_SECONDS."""
    state = request.app[routing_key]
    problems: list[str] = []
    database = await request.app[readiness_key].problem()
    if database is not None:
        problems.append(database)
    if not state.from_database:
        problems.append("routing not loaded from the database (running on the last-known copy)")
    body = {
        "status": "ok" if not problems else "unavailable",
        "version": state.active.version,
        "problems": problems,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    await read_outbox_gauges(request.app)
    payload = generate_latest(request.app[metrics_key].registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


async def read_outbox_gauges(app: web.Application) -> None:
    """The outbox as the database holds it, read at scrape time; when the database does not
    answer (quickly), the last values stay and the scrape still succeeds."""
    metrics, store = app[metrics_key], app[store_key]
    try:
        async with asyncio.timeout(SCRAPE_QUERY_SECONDS):
            depth = await store.outbox_depth()
            oldest = await store.oldest_pending_forward()
            waiting = await store.outbox_pending_by_destination()
    except (DatabaseUnavailable, TimeoutError) as exc:
        log.warning("metrics.outbox_unavailable", error=str(exc))
        return
    now = app[clock_key]()
    for status, count in depth.items():
        metrics.outbox_forwards.labels(status).set(count)
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    metrics.outbox_oldest_pending_seconds.set(max(age, 0.0))
    pending = metrics.outbox_destination_pending
    ages = metrics.outbox_destination_oldest_pending_seconds
    # a destination with nothing waiting any more drops out, rather than show its last backlog
    pending.clear()
    ages.clear()
    for kind, destination, count, since in waiting:
        pending.labels(kind, destination).set(count)
        ages.labels(kind, destination).set(max((now - since).total_seconds(), 0.0))


async def http_client(app: web.Application) -> AsyncIterator[None]:
    """One client session for every outbound HTTP call (chat hand-offs)."""
    # no connection limit of its own: the outbox bounds hand-offs per destination and in all
    # (router/service/outbox.py), and a stuck endpoint's connections must not queue the others
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[http_client_key] = session
        yield


async def smtp_sender(app: web.Application) -> AsyncIterator[None]:
    """The email sender, whose pooled SMTP connections are closed (QUIT) at shutdown, after
    the outbox worker that uses them has stopped."""
    settings = app[settings_key]
    if settings.smtp is None:
        log.warning("outbox.email_waiting", reason="SWITCHBOARD_SMTP_HOST is not set")
        yield
        return
    sender = SmtpSender(settings.smtp)
    app[smtp_sender_key] = sender
    yield
    await sender.close()


async def outbox_worker(app: web.Application) -> AsyncIterator[None]:
    """Deliver forwards (email over SMTP, chat hand-offs over HTTP) in the background."""
    settings = app[settings_key]
    chat = ChatSender(
        app[http_client_key], settings.chat_secret, timeout_seconds=settings.chat_timeout_seconds
    )
    senders: dict[str, Sender] = {"chat": chat}
    email = app.get(smtp_sender_key)
    if email is not None:
        senders["email"] = email
    worker = OutboxWorker(
        app[store_key],
        senders,
        schedule=Schedule(
            base=timedelta(seconds=settings.outbox_base_delay),
            cap=timedelta(seconds=settings.outbox_max_delay),
            max_attempts=settings.outbox_max_attempts,
        ),
        clock=app[clock_key],
        wake=app[outbox_wake_key],
        lease=timedelta(seconds=settings.outbox_lease_seconds),
        metrics=app[metrics_key],
    )
    app[outbox_worker_key] = worker
    task = asyncio.create_task(worker.run(), name="outbox")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def server_options(settings: Settings) -> dict[str, Any]:
    """How ``serve`` runs the app's connections (``web.run_app``'s handler arguments).

    ``keepalive_timeout`` closes a connection idle that long — and, since aiohttp arms it
    when a connection opens and re-arms it after each answer, one that has not finished
    sending a request's headers by then: a client trickling headers (slowloris) holds a
    socket for ``SWITCHBOARD_IDLE_TIMEOUT`` at most. A body has
    ``SWITCHBOARD_BODY_TIMEOUT`` once the headers are in (``router/web/bodies.py``: 408).
    A request line or header field over 8190 bytes, or more than 128 header fields, is
    answered 400 by aiohttp before any handler runs (its defaults, spelled out here).
    ``lingering_time`` bounds how long an unread body is drained after an early answer
    (a 413, a 403) before the connection is closed."""
    return {
        "keepalive_timeout": settings.idle_timeout_seconds,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 128,
        "lingering_time": 2.0,
    }


def make_app(settings: Settings, *, clock: Clock = utc_now) -> web.Application:
    # Each route's body limit is router/web/bodies.py's (413 above it); this one only bounds
    # a body read some other way: the largest limit, an email with its attachments.
    largest = max(
        settings.max_email_bytes,
        settings.max_form_bytes,
        settings.max_json_bytes,
        settings.max_document_bytes,
    )
    app = web.Application(middlewares=[request_context, refuse_oversized], client_max_size=largest)
    app[settings_key] = settings
    app[clock_key] = clock
    app[metrics_key] = Metrics()
    app[wake_key] = asyncio.Event()
    app[outbox_wake_key] = asyncio.Event()
    app[customer_secret_key] = customer_key_secret(settings)
    app.cleanup_ctx.extend([database, routing_follower, http_client, smtp_sender, outbox_worker])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    web_voice.add_routes(app)
    web_email.add_routes(app)
    web_chat.add_routes(app)
    web_partner.add_routes(app)
    web_api.add_routes(app)
    web_console.add_routes(app)
    return app
