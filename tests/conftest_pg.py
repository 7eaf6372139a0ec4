"""pytest plugin: one throwaway PostgreSQL server per test session (see tests/pg_server.py).

Enable it from tests/conftest.py (the top-level conftest of the ``tests`` package)::

    pytest_plugins = ["tests.conftest_pg"]

Fixtures:

* ``postgres_server`` (session): a running :class:`~tests.pg_server.PostgresServer` with
  ``.url`` (SQLAlchemy async URL of a shared default database) and
  ``.create_database(name) -> url`` (a fresh, empty database).
* ``postgres_database_url`` (function): URL of a fresh database for this test only,
  dropped afterwards.

Without PostgreSQL installed the tests that use them are skipped, unless the environment
variable ``CI`` is set (to anything but ``0``/``false``/``no``): then they fail, because CI
must install PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

import pytest

from .pg_server import PostgresServer, PostgresUnavailable, start_postgres

_database_numbers = itertools.count(1)


def ci_requires_postgres() -> bool:
    """True when the ``CI`` environment variable asks for every test to really run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def postgres_unavailable(reason: str) -> NoReturn:
    """Skip the current test, or fail it when running under CI."""
    if ci_requires_postgres():
        pytest.fail(f"CI is set, so PostgreSQL is required: {reason}", pytrace=False)
    pytest.skip(f"{reason} [skipped because CI is not set; under CI this fails]")


@contextmanager
def running_postgres(settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server (*settings* replacing the test defaults), stopped when
    the block ends; the test is skipped (or failed under CI) when none can be started."""
    try:
        server = start_postgres(settings=settings)
    except PostgresUnavailable as exc:
        postgres_unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server shared by the whole session, stopped at its end."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_database_url(
    postgres_server: PostgresServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """SQLAlchemy async URL of a database created for this test and dropped after it."""
    url = postgres_server.create_database(f"t{next(_database_numbers)}_{request.node.name}")
    yield url
    postgres_server.drop_database(url.rsplit("/", 1)[1])
