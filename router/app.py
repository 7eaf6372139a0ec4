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
from datetime import UTC, datetime

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from router import migrate, web_voice
from router.appkeys import (
    Clock,
    clock_key,
    customer_secret_key,
    metrics_key,
    routing_key,
    settings_key,
    store_key,
)
from router.metrics import Metrics
from router.routing import ActiveRouting, RoutingState, last_known, remember
from router.service import ensure_initial_routing
from router.settings import Settings, customer_key_secret
from router.store import Store, create_engine

log = structlog.get_logger(__name__)

#: How often a running service looks for a new routing version (SPEC §4: in force ≤ 1 s).
POLL_SECONDS = 0.25

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


async def prepare_database(app: web.Application) -> bool:
    """Migrate, make sure a routing version exists and load it; False on an outage."""
    store = app[store_key]
    try:
        await migrate.upgrade(store.engine)
        row = await ensure_initial_routing(store, app[clock_key]())
        active = ActiveRouting.from_row(row)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.error("database.unavailable", error=str(exc))
        return False
    app[routing_key].use(active)
    app[metrics_key].routing_version.set(active.version)
    remember(active, app[settings_key].var_dir)
    return True


async def follow_routing(app: web.Application) -> None:
    """Pick up new routing versions, whoever committed them (CLI, API, other replicas)."""
    store, state = app[store_key], app[routing_key]
    healthy = state.from_database
    while True:
        await asyncio.sleep(POLL_SECONDS)
        try:
            if not state.from_database:
                healthy = await prepare_database(app)
                continue
            newest = await store.latest_version_number()
            if newest != state.active.version:
                row = await store.version(newest)
                if row is not None:
                    active = ActiveRouting.from_row(row)
                    state.use(active)
                    app[metrics_key].routing_version.set(active.version)
                    remember(active, app[settings_key].var_dir)
            if not healthy:
                log.info("database.available")
                healthy = True
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            if healthy:
                log.error("database.unavailable", error=str(exc))
                healthy = False
        except Exception:  # a bad stored document must not stop routing updates for good
            log.exception("routing.refresh_failed")


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    engine = create_engine(settings.database_url, timeout_seconds=settings.db_timeout_seconds)
    app[store_key] = Store(engine, timeout_seconds=settings.db_timeout_seconds)
    app[routing_key] = RoutingState(last_known(settings.var_dir), from_database=False)
    if not await prepare_database(app):
        log.warning(
            "routing.last_known_in_use",
            version=app[routing_key].active.version,
            hint="calls get a safe <Dial>; email and chat answer 503 until the database is back",
        )
    yield
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
    """Ready when the database answers and a stored routing version is loaded."""
    state = request.app[routing_key]
    problems: list[str] = []
    try:
        async with asyncio.timeout(2):
            await request.app[store_key].ping()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        problems.append(f"database unreachable: {exc}")
    if not state.from_database:
        problems.append("routing not loaded from the database (running on the last-known copy)")
    body = {
        "status": "ok" if not problems else "unavailable",
        "version": state.active.version,
        "problems": problems,
    }
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[metrics_key].registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def make_app(settings: Settings, *, clock: Clock = utc_now) -> web.Application:
    app = web.Application(middlewares=[request_context], client_max_size=1024**2)
    app[settings_key] = settings
    app[clock_key] = clock
    app[metrics_key] = Metrics()
    app[customer_secret_key] = customer_key_secret(settings)
    app.cleanup_ctx.extend([database, routing_follower])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    web_voice.add_routes(app)
    return app


def monotonic_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
