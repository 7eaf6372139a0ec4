"""Shared fixtures: a real app on a real SQLite file, a settable clock, signed Twilio posts."""

from __future__ import annotations

import copy
import io
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result
from hypothesis import settings as hypothesis_settings
from twilio.request_validator import RequestValidator

from router.cli.commands import cli
from router.core.document import document_data, shipped_document, validate_document
from router.logging import configure_logging
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store, create_engine, migrate
from router.web.app import make_app
from router.web.appkeys import clock_key

from .smtp_sink import SmtpSink

pytest_plugins = ["tests.conftest_pg"]

# CI (.ci/run sets CI) draws the same Hypothesis examples on every run: a property test
# that meets a new counterexample there by chance would keep a change from landing for a
# failure it did not cause. Local runs draw fresh ones, and `make soak` a hundred times as
# many; what they find becomes a regression test (tests/test_bad_input.py).
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

PRAGUE = ZoneInfo("Europe/Prague")
#: A Monday, 09:30 in Prague: the hotline is open, the partner always is.
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=PRAGUE)
Client = TestClient[web.Request, web.Application]
PUBLIC_URL = "https://switchboard.example/sb"
TWILIO_TOKEN = "twilio-test-auth-token"


class Clock:
    """A clock the test sets and moves by hand, and that ticks on in real time between, so
    retry schedules (the outbox) come due while a test waits."""

    def __init__(self, start: datetime = NOW) -> None:
        self.set(start)

    @property
    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._set_at)

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)

    def set(self, moment: datetime) -> None:
        self._base = moment
        self._set_at = time.monotonic()

    def advance(self, delta: timedelta) -> None:
        self.set(self.now + delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}",
        "var_dir": tmp_path / "var",
        "public_url": PUBLIC_URL,
        "twilio_auth_token": TWILIO_TOKEN,
        "customer_key_secret": "a-test-secret-of-enough-length",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(
    settings: Settings, clock: Clock
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(settings, clock=clock))) as test_client:
        yield test_client


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """A second, independent connection to the app's database (as the CLI would have)."""
    engine = create_engine(settings.database_url)
    yield Store(engine)
    await engine.dispose()


@asynccontextmanager
async def migrated_store(database_url: str) -> AsyncIterator[Store]:
    """A store on *database_url*, migrated as in production; its engine disposed after."""
    engine = create_engine(database_url)
    try:
        await migrate.upgrade(engine)
        yield Store(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated(settings: Settings) -> AsyncIterator[Store]:
    """The app's database file, migrated as in production, through a store of its own."""
    async with migrated_store(settings.database_url) as store:
        yield store


def app_time(client: TestClient[Any, Any]) -> int:
    """The app's clock in unix seconds: what a webhook signed "now" is stamped with, since
    the app judges a signature's freshness by its own clock, not the machine's."""
    return int(client.app[clock_key]().timestamp())


def twilio_signature(url: str, form: Mapping[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, dict(form)))


async def post_twilio(
    client: TestClient[web.Request, web.Application],
    path_qs: str,
    form: Mapping[str, str],
    *,
    token: str = TWILIO_TOKEN,
    public_url: str = PUBLIC_URL,
    signature: str | None = None,
) -> ClientResponse:
    """POST *form* to *path_qs* signed the way Twilio signs it (public URL + path + query)."""
    if signature is None:
        signature = twilio_signature(public_url + path_qs, form, token)
    return await client.post(path_qs, data=dict(form), headers={"X-Twilio-Signature": signature})


# -- email: a real SMTP server, and apps that forward to it ---------------------------------


@pytest.fixture
def relay() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(relay: SmtpSink) -> SmtpSink:
    """The SMTP server the apps of a test forward to."""
    return relay


def shipped_data() -> dict[str, Any]:
    """The shipped routing document as plain data, to change and store in a test."""
    return copy.deepcopy(document_data(shipped_document()))


async def store_document(settings: Settings, data: dict[str, Any], now: datetime) -> None:
    """Make *data* the routing in force in *settings*' database before the app starts."""
    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        await apply_document(
            Store(engine), validate_document(data), actor="test", reason="test setup", now=now
        )
    finally:
        await engine.dispose()


@pytest.fixture
async def started_apps(clock: Clock) -> AsyncIterator[Callable[[Settings], Any]]:
    """Start real apps on demand; every one is closed at the end of the test."""
    clients: list[Client] = []

    async def start(settings: Settings) -> Client:
        client: Client = TestClient(TestServer(make_app(settings, clock=clock)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
def email_app(started_apps: Callable[[Settings], Any], clock: Clock) -> Callable[..., Any]:
    async def start(settings: Settings, *, cutover: dict[str, Any] | None = None) -> Client:
        if cutover is not None:
            await store_document(settings, {**shipped_data(), "cutover": cutover}, clock())
        client: Client = await started_apps(settings)
        return client

    return start


# -- the CLI in this process (click's runner), on its own SQLite file --------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "SWITCHBOARD_VAR_DIR": str(tmp_path / "var"),
        "SWITCHBOARD_ACTOR": "jana",
    }


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


# -- log output, as the service writes it ------------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[Callable[[str], io.StringIO]]:
    """Configure logging as the service does, in the format asked for ("json" or
    "console"), into a buffer the test reads; the previous configuration comes back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()

    def configure(log_format: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(json=log_format == "json", stream=stream)
        return stream

    yield configure
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
