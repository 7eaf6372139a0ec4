"""Schema migrations with Alembic, run on an open async engine.

The scripts live in ``router/migrations`` (package data). ``serve`` and every CLI command
call :func:`upgrade`; on PostgreSQL an advisory lock keeps two replicas that start together
from migrating at once. Alembic itself is imported only when the schema is behind: the
on-call person's ``switchboard rollback`` should not pay for it on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK = 0x5B0A4D  # arbitrary, constant: "the switchboard migration lock"
#: The newest revision in migrations/versions (a test keeps this in step with the scripts).
HEAD = "0008"


def _config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    command.upgrade(_config(connection), "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's revision, or None for an empty database."""
    try:
        async with engine.connect() as connection:
            result = await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()
    except DBAPIError as exc:
        if _missing_table(exc):
            return None
        raise


def _missing_table(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "no such table" in message or "does not exist" in message


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (a cheap check when it is there already)."""
    if await current_revision(engine) == HEAD:
        return
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def script_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return ScriptDirectory.from_config(config).get_current_head()


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == script_head()
