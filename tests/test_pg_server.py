"""The throwaway PostgreSQL server used by the PostgreSQL tests (tests/pg_server.py).

Skipped when PostgreSQL is not installed, unless ``CI`` is set: then these tests fail.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests import pg_server
from tests.pg_server import PostgresServer, PostgresUnavailable

# Usually registered by tests/conftest.py; naming it here too keeps this module
# self-contained (pytest registers a plugin only once).
pytest_plugins = ["tests.conftest_pg"]


async def test_engine_round_trip(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("round_trip")
    assert url.startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_server.port}/")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            version = (await conn.execute(text("select version()"))).scalar_one()
            assert version.startswith("PostgreSQL ")
            await conn.execute(text("create table note (id serial primary key, body text)"))
            await conn.execute(
                text("insert into note (body) values (:a), (:b)"), {"a": "hello", "b": "wörld"}
            )
        async with engine.connect() as conn:
            rows = (await conn.execute(text("select id, body from note order by id"))).all()
        assert [tuple(row) for row in rows] == [(1, "hello"), (2, "wörld")]
    finally:
        await engine.dispose()


async def test_default_database_and_settings(postgres_server: PostgresServer) -> None:
    url = make_url(postgres_server.url)
    assert (url.drivername, url.username, url.host, url.database) == (
        "postgresql+asyncpg",
        "postgres",
        "127.0.0.1",
        "switchboard",
    )
    engine = create_async_engine(postgres_server.url)
    try:
        async with engine.connect() as conn:
            settings = {
                name: (await conn.execute(text(f"show {name}"))).scalar_one()
                for name in ("listen_addresses", "fsync", "server_encoding")
            }
    finally:
        await engine.dispose()
    assert settings == {"listen_addresses": "127.0.0.1", "fsync": "off", "server_encoding": "UTF8"}
    assert Path(postgres_server.socket_dir).is_relative_to(postgres_server.base_dir)


async def test_databases_are_fresh_and_separate(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("same name")
    second = postgres_server.create_database("same name")
    assert first != second  # a name handed out twice still yields a new database
    engine_a, engine_b = create_async_engine(first), create_async_engine(second)
    try:
        async with engine_a.begin() as conn:
            await conn.execute(text("create table only_in_a (x int)"))
        async with engine_b.connect() as conn:
            found = await conn.execute(text("select to_regclass('only_in_a') is not null"))
            assert found.scalar_one() is False
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_per_test_database_fixture(postgres_database_url: str) -> None:
    engine = create_async_engine(postgres_database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.execute(
                text("select count(*) from pg_tables where schemaname = 'public'")
            )
            assert tables.scalar_one() == 0
    finally:
        await engine.dispose()


def test_stop_cleans_up_even_after_a_failure(postgres_server: PostgresServer) -> None:
    # postgres_server only gates this test (skip/fail); it starts a second server of its own.
    with pytest.raises(RuntimeError, match="boom"), PostgresServer.start("other") as server:
        base_dir, port = server.base_dir, server.port
        assert base_dir.is_dir()
        raise RuntimeError("boom")
    assert not base_dir.exists()
    with socket.socket() as sock:  # nobody listens on the port any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    server.stop()  # idempotent


def test_missing_postgres_is_reported_as_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_server, "find_pg_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        pg_server.start_postgres()


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        (None, pytest.skip.Exception),
        ("", pytest.skip.Exception),
        ("false", pytest.skip.Exception),
        ("true", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
    ],
)
def test_unavailable_skips_locally_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: type[BaseException]
) -> None:
    from tests.conftest_pg import postgres_unavailable

    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="CI"):
        postgres_unavailable("no initdb")
