"""The ``switchboard`` command line.

Commands work on the database named by ``SWITCHBOARD_DATABASE_URL`` directly, so the
on-call person can inspect and change routing while the HTTP service is down. Data goes to
stdout (``--format json`` for scripts); errors go to stderr with a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from router import migrate
from router.contact import Category, Channel
from router.document import (
    DocumentInvalid,
    RoutingDocument,
    diff_documents,
    document_data,
    load_document,
)
from router.durations import parse_duration
from router.service import apply_document, stored_document
from router.settings import Settings, SettingsError, load_settings
from router.store import RoutingVersion, StaleVersion, Store, create_engine

T = TypeVar("T")

FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints machine-readable output.",
)


def default_actor() -> str:
    explicit = os.environ.get("SWITCHBOARD_ACTOR")
    if explicit:
        return explicit
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


ACTOR = click.option(
    "--actor",
    default=default_actor,
    show_default="$SWITCHBOARD_ACTOR or cli:<user>",
    help="Who makes the change (kept in the audit trail).",
)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid settings:\n{exc}") from exc


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@asynccontextmanager
async def opened_store(settings: Settings) -> AsyncIterator[Store]:
    """The database, migrated to the current schema."""
    engine = create_engine(settings.database_url)
    try:
        await migrate.upgrade(engine)
        yield Store(engine)
    finally:
        await engine.dispose()


def run(work: Callable[[Store], Awaitable[T]]) -> T:
    """Run *work* against the configured database; outages become clear CLI errors."""
    settings = _settings()

    async def main() -> T:
        async with opened_store(settings) as store:
            return await work(store)

    try:
        return asyncio.run(main())
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(
            f"database {redacted(settings.database_url)} is unavailable: {exc}"
        ) from exc


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def version_json(row: RoutingVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "kind": row.kind,
        "actor": row.actor,
        "reason": row.reason,
        "created_at": iso(row.created_at),
    }


def share_matrix(document: RoutingDocument) -> dict[str, dict[str, float]]:
    return {
        channel.value: {category.value: document.share(channel, category) for category in Category}
        for channel in Channel
    }


async def require_current(store: Store) -> RoutingVersion:
    row = await store.current_version()
    if row is None:
        raise click.ClickException(
            "the database holds no routing version yet: start the service "
            "(it loads config/routing.yaml) or run `switchboard config apply FILE --reason …`"
        )
    return row


def load_or_fail(path: Path) -> RoutingDocument:
    try:
        return load_document(path)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{path}: no such file") from exc
    except DocumentInvalid as exc:
        raise click.ClickException(f"{path} is not a valid routing document:\n{exc}") from exc


def require_reason(reason: str) -> str:
    if not reason.strip():
        raise click.BadParameter(
            "give a reason: it is kept in the audit trail", param_hint="--reason"
        )
    return reason.strip()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Switchboard: route contacts between the partner and the in-house hotline."""


# -- serve and db ---------------------------------------------------------------------------


@cli.command()
@click.option(
    "--host", default=None, help="Listen address [default: $SWITCHBOARD_HOST or 127.0.0.1]."
)
@click.option("--port", type=int, default=None, help="Port [default: $SWITCHBOARD_PORT or 8080].")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP service (migrates the database first)."""
    from aiohttp import web

    from router.app import make_app
    from router.logging import configure_logging

    settings = _settings()
    configure_logging(json=None if settings.log_format is None else settings.log_format == "json")
    app = make_app(settings)
    web.run_app(
        app,
        host=host or settings.host,
        port=port if port is not None else settings.port,
        print=None,
        access_log=None,
        shutdown_timeout=10,
    )


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    settings = _settings()

    async def work(store: Store) -> None:
        return None

    run(work)
    click.echo(f"database {redacted(settings.database_url)} is up to date")


# -- status and interactions ---------------------------------------------------------------


@cli.command()
@FORMAT
def status(output_format: str) -> None:
    """What routing is in force now."""

    async def work(store: Store) -> RoutingVersion:
        return await require_current(store)

    row = run(work)
    document = stored_document(row)
    payload = {
        **version_json(row),
        "cutover": share_matrix(document),
        "rollback": None,
    }
    if output_format == "json":
        emit_json(payload)
        return
    click.echo(f"version {row.version} ({row.kind}) by {row.actor} at {iso(row.created_at)}")
    click.echo(f"reason: {row.reason}")
    click.echo("cut-over shares (% of customers on target routing):")
    click.echo(f"  {'':8}" + "".join(f"{c.value:>9}" for c in Category))
    for channel, shares in payload["cutover"].items():
        click.echo(f"  {channel:8}" + "".join(f"{shares[c.value]:>9g}" for c in Category))
    click.echo("rollback: none")


_RELATIVE = re.compile(r"^\d+[smhd]$")


def parse_since(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    if _RELATIVE.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            "use an ISO 8601 time (2026-11-23T08:00:00+01:00) or a duration (24h, 7d)",
            param_hint="--since",
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@cli.command()
@click.option("--since", default=None, help="ISO 8601 time or a duration back from now (24h).")
@click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@FORMAT
def interactions(since: str | None, channel: str | None, limit: int, output_format: str) -> None:
    """What was routed where, and why (newest first)."""
    since_at = parse_since(since, datetime.now(UTC))

    async def work(store: Store) -> Sequence[Any]:
        return await store.interactions(since=since_at, channel=channel, limit=limit)

    rows = run(work)
    records = [interaction_json(row) for row in rows]
    if output_format == "json":
        emit_json(records)
        return
    if not records:
        click.echo("no interactions")
        return
    for record in records:
        click.echo(
            f"{record['received_at']}  #{record['id']:<6} {record['channel']:6} "
            f"{record['category']:8} {record['side']:9} -> {record['destination']:10} "
            f"{record['reason']:12} v{record['version']}  {record['outcome'] or ''}"
        )


def interaction_json(row: Any) -> dict[str, Any]:
    data: dict[str, Any] = row.model_dump()
    for key in ("received_at", "decided_at", "updated_at"):
        if data.get(key) is not None:
            data[key] = iso(data[key])
    return data


# -- config -------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Routing documents: validate, apply, show, history, diff, revert."""


@config.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@FORMAT
def config_validate(file: Path, output_format: str) -> None:
    """Check a routing document without changing anything."""
    try:
        load_document(file)
    except FileNotFoundError as exc:
        raise click.ClickException(f"{file}: no such file") from exc
    except DocumentInvalid as exc:
        if output_format == "json":
            problems = [{"path": p.path, "message": p.message} for p in exc.problems]
            emit_json({"valid": False, "problems": problems})
        else:
            click.echo(f"{file} is not a valid routing document:\n{exc}", err=True)
        sys.exit(1)
    if output_format == "json":
        emit_json({"valid": True, "problems": []})
    else:
        click.echo(f"{file} is a valid routing document")


@config.command("apply")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@ACTOR
@FORMAT
def config_apply(file: Path, reason: str, actor: str, output_format: str) -> None:
    """Make FILE the routing in force, as a new version."""
    document = load_or_fail(file)
    reason = require_reason(reason)

    async def work(store: Store) -> RoutingVersion | None:
        return await apply_document(
            store, document, actor=actor, reason=reason, now=datetime.now(UTC)
        )

    row = run(work)
    if row is None:
        if output_format == "json":
            emit_json({"changed": False})
        else:
            click.echo("routing unchanged: the document equals the current version")
        return
    if output_format == "json":
        emit_json({"changed": True, **version_json(row)})
    else:
        click.echo(f"applied as version {row.version}")


@config.command("show")
@click.option("--version", "number", type=int, default=None, help="A past version.")
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml")
def config_show(number: int | None, output_format: str) -> None:
    """Print the routing document in force (or a past version)."""

    async def work(store: Store) -> RoutingVersion:
        if number is None:
            return await require_current(store)
        row = await store.version(number)
        if row is None:
            raise click.ClickException(f"there is no version {number}")
        return row

    data = document_data(stored_document(run(work)))
    if output_format == "json":
        emit_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


@config.command("history")
@click.option("--limit", type=click.IntRange(min=1), default=None)
@FORMAT
def config_history(limit: int | None, output_format: str) -> None:
    """Every routing version, newest first: who, when, why."""

    async def work(store: Store) -> Sequence[RoutingVersion]:
        return await store.history(limit)

    rows = run(work)
    if output_format == "json":
        emit_json([version_json(row) for row in rows])
        return
    for row in rows:
        click.echo(
            f"v{row.version:<5} {iso(row.created_at)}  {row.kind:8} {row.actor:20} {row.reason}"
        )


async def _document_of(store: Store, ref: str) -> RoutingDocument:
    if ref.isdigit():
        row = await store.version(int(ref))
        if row is None:
            raise click.ClickException(f"there is no version {ref}")
        return stored_document(row)
    return load_or_fail(Path(ref))


@config.command("diff")
@click.argument("a")
@click.argument("b")
@FORMAT
def config_diff(a: str, b: str, output_format: str) -> None:
    """What changes from A to B (each a version number or a document file)."""

    async def work(store: Store) -> tuple[RoutingDocument, RoutingDocument]:
        return await _document_of(store, a), await _document_of(store, b)

    old, new = run(work)
    changes = diff_documents(old, new)
    if output_format == "json":
        emit_json([{"path": c.path, "from": c.old, "to": c.new} for c in changes])
        return
    if not changes:
        click.echo("no differences")
    for change in changes:
        click.echo(f"{change.path}: {_show(change.old)} -> {_show(change.new)}")


def _show(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False)


@config.command("revert")
@click.argument("version", type=int)
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@ACTOR
@FORMAT
def config_revert(version: int, reason: str, actor: str, output_format: str) -> None:
    """Make an earlier version's document current again, as a new version."""
    reason = require_reason(reason)

    async def work(store: Store) -> RoutingVersion:
        old = await store.version(version)
        if old is None:
            raise click.ClickException(f"there is no version {version}")
        current = await require_current(store)
        try:
            return await store.add_version(
                document=old.document,
                kind="revert",
                actor=actor,
                reason=reason,
                now=datetime.now(UTC),
                expected_current=current.version,
            )
        except StaleVersion as exc:
            raise click.ClickException(f"{exc}; try again") from exc

    row = run(work)
    if output_format == "json":
        emit_json(version_json(row))
    else:
        click.echo(f"version {version} is current again as version {row.version}")


def main() -> None:
    cli(prog_name="switchboard")


# -- trying it out -----------------------------------------------------------------------------


@cli.command("try-call")
@click.option("--url", default=None, help="The service [default: $SWITCHBOARD_PUBLIC_URL].")
@click.option("--from", "caller", default="+420601234567", show_default=True)
@click.option("--digits", default=None, help="The key the caller presses (1 admin, 2 product).")
@click.option("--speech", default=None, help="What the caller says instead of pressing a key.")
@click.option("--call-sid", default=None, help="Reuse a CallSid to see a retry answered alike.")
def try_call(
    url: str | None, caller: str, digits: str | None, speech: str | None, call_sid: str | None
) -> None:
    """Simulate a Twilio call against a running service, signed with $TWILIO_AUTH_TOKEN."""
    import secrets

    import aiohttp

    from integrations.twilio_voice import ROUTE_PATH, SIGNATURE_HEADER, VOICE_PATH, sign

    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise click.ClickException("set TWILIO_AUTH_TOKEN to the token the service uses")
    base = (url or os.environ.get("SWITCHBOARD_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/")
    sid = call_sid or f"CA{secrets.token_hex(16)}"
    form = {"CallSid": sid, "From": caller, "To": "+420555000111", "CallStatus": "ringing"}
    answer: dict[str, str] = {}
    if digits:
        answer["Digits"] = digits
    if speech:
        answer["SpeechResult"] = speech

    async def call() -> None:
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for path, fields in ((VOICE_PATH, form), (ROUTE_PATH, {**form, **answer})):
                headers = {SIGNATURE_HEADER: sign(token, base + path, fields)}
                async with session.post(base + path, data=fields, headers=headers) as response:
                    click.echo(f"POST {path} -> {response.status}")
                    click.echo(await response.text())
                    if response.status != 200:
                        raise click.ClickException(f"{path} answered {response.status}")

    try:
        asyncio.run(call())
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from exc
