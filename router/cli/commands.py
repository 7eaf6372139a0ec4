"""The ``switchboard`` command line.

Each command is written once against :class:`~router.cli.backend.Backend`: on the database
named by ``SWITCHBOARD_DATABASE_URL`` (:mod:`router.cli.local`), so the on-call person can
inspect and change routing while the HTTP service is down, or with ``--url`` and a token
through a running service's API (:mod:`router.cli.remote`). Both give the same JSON shapes
(router/service/views.py), so one printer serves both. Data goes to stdout (``--format
json`` for scripts); errors go to stderr with a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml

from router.cli import lean
from router.cli.backend import Backend, Cutover, Refused, Rollback
from router.cli.local import load_or_refuse, local_backend
from router.core.contact import Category, Channel, searched_customer_key
from router.core.document import DocumentInvalid, load_document
from router.core.durations import parse_since
from router.core.lifecycle import Outcome
from router.core.migration import MigrationError, PlanInvalid, parse_for, parse_plan
from router.core.report import DEFAULT_SINCE, render_text
from router.core.sla import DEFAULT_SINCE as SLA_SINCE
from router.core.staffing import DEFAULT_SINCE as STAFFING_SINCE
from router.core.staffing import DEFAULT_TARGET, parse_target
from router.logging import configure_logging
from router.service.tokens import Role
from router.service.views import STATUS_CONVERSATIONS, iso
from router.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from pydantic import BaseModel

    from router.core.classify import Classification

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints machine-readable output.",
)


def default_actor() -> str:
    return lean.default_actor(os.environ)


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


@dataclass(frozen=True, slots=True)
class Target:
    """Where commands act: the database (no url) or a running service's API."""

    url: str | None
    token: str | None


def _target() -> Target:
    target = click.get_current_context().find_root().obj
    return target if isinstance(target, Target) else Target(None, None)


def _opened_backend() -> AbstractAsyncContextManager[Backend]:
    target = _target()
    if target.url is None:
        return local_backend(_settings())
    if not target.token:
        raise click.ClickException("--url needs --token (or SWITCHBOARD_TOKEN)")
    # imported here: the HTTP client costs the on-call person's rollback a quarter second
    from router.cli.remote import remote_backend

    return remote_backend(target.url, target.token)


def on_backend(work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run *work* on the database or through the service; a refusal, an outage or an
    unreachable service is a clear CLI error."""
    opened = _opened_backend()

    async def main() -> T:
        async with opened as backend:
            return await work(backend)

    try:
        return asyncio.run(main())
    except Refused as exc:
        raise click.ClickException(str(exc)) from exc


def through_api() -> bool:
    return _target().url is not None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def table_format_option(help_text: str | None = None) -> Callable[[F], F]:
    """``--format table|json|csv`` of the commands that print a figures table."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help=help_text,
    )


def print_figures(
    result: BaseModel,
    output_format: str,
    table: Callable[[Any], str],
    csv: Callable[[Any], str],
) -> None:
    """*result* as JSON (the API's answer), CSV (a file's bytes, as the API downloads it)
    or the table for people."""
    if output_format == "json":
        emit_json(result.model_dump(mode="json"))
    elif output_format == "csv":
        click.echo(csv(result), nl=False)
    else:
        click.echo(table(result))


def load_or_fail(path: Path) -> Any:
    try:
        return load_or_refuse(path)
    except Refused as exc:
        raise click.ClickException(str(exc)) from exc


def require_reason(reason: str) -> str:
    if not reason.strip():
        raise click.BadParameter(
            "give a reason: it is kept in the audit trail", param_hint="--reason"
        )
    return reason.strip()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="SWITCHBOARD_URL",
    default=None,
    help="Work through this running service's API instead of the database.",
)
@click.option(
    "--token",
    envvar="SWITCHBOARD_TOKEN",
    default=None,
    help="Bearer token for --url (switchboard token create).",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Switchboard: route contacts between the partner and the in-house hotline."""
    ctx.obj = Target(url, token)
    # stdout carries the data; log lines (e.g. routing.rolled_back) go to stderr
    settings_format = os.environ.get("SWITCHBOARD_LOG_FORMAT")
    configure_logging(
        json=None if settings_format not in ("json", "console") else settings_format == "json",
        level=logging.WARNING,
    )


#: ``--limit`` has no upper cap (SPEC §5): a larger one means the same as the database's
#: largest integer, which is what it becomes (the driver cannot bind a larger one).
NO_CAP = 2**63 - 1


# -- serve and db ---------------------------------------------------------------------------


@cli.command()
@click.option(
    "--host", default=None, help="Listen address [default: $SWITCHBOARD_HOST or 127.0.0.1]."
)
@click.option("--port", type=int, default=None, help="Port [default: $SWITCHBOARD_PORT or 8080].")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP service (migrates the database first)."""
    from aiohttp import web

    from router.memory import limit_malloc_arenas
    from router.web.app import make_app, server_options

    if through_api():
        raise click.ClickException("serve works on the database only: drop --url")
    limit_malloc_arenas()  # before the first thread
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
        **server_options(settings),
    )


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    click.echo(on_backend(lambda backend: backend.upgrade()))


# -- status and interactions ---------------------------------------------------------------


def conversations_option(context: click.Context, param: click.Parameter, text: str) -> int | None:
    """``--conversations``: a positive count, or ``all`` (None)."""
    if text == "all":
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise click.BadParameter(f"{text!r} is neither a positive number nor 'all'")


@cli.command()
@FORMAT
@click.option(
    "--conversations",
    "conversations",
    default=str(STATUS_CONVERSATIONS),
    callback=conversations_option,
    show_default=True,
    metavar="N|all",
    help="How many of the conversations the partner still holds to list, newest first "
    "(all are counted).",
)
def status(output_format: str, conversations: int | None) -> None:
    """What routing is in force now: version, shares, rollback, plan, partner's threads."""
    payload = on_backend(lambda backend: backend.status(conversations=conversations))
    if output_format == "json":
        emit_json(payload)
        return
    click.echo(
        f"version {payload['version']} ({payload['kind']}) by {payload['actor']} "
        f"at {payload['created_at']}"
    )
    click.echo(f"reason: {payload['reason']}")
    click.echo("cut-over shares (% of customers on target routing):")
    click.echo(f"  {'':8}" + "".join(f"{c.value:>9}" for c in Category))
    for channel, shares in payload["cutover"].items():
        click.echo(f"  {channel:8}" + "".join(f"{shares[c.value]:>9g}" for c in Category))
    rollback = payload["rollback"]
    if rollback is None:
        click.echo("rollback: none in force")
    else:
        scope = rollback["channel"] or "all channels"
        ends = (
            f"until {rollback['until']}, then version {rollback['restores']} comes back"
            if rollback["until"]
            else "until someone changes routing (`switchboard resume` brings back "
            f"version {rollback['restores']})"
        )
        click.echo(
            f"ROLLBACK IN FORCE ({scope}) since {rollback['since']} by {rollback['actor']}: "
            f"{rollback['reason']}; {ends}"
        )
    cancelled = payload["rollback_return_cancelled"]
    if cancelled is not None:
        click.echo(
            f"note: the automatic return planned for {cancelled['would_have_ended']} "
            f"(rollback version {cancelled['rollback_version']}) was cancelled by version "
            f"{cancelled['cancelled_by_version']} ({cancelled['actor']}: {cancelled['reason']})"
        )
    steps = payload["plan"]
    click.echo(f"plan: {len(steps)} pending step(s)")
    for step in steps:
        held = "  [held: rollback in force]" if step["held_by_rollback"] else ""
        click.echo(f"  #{step['id']} at {step['at']}: {step['reason']} {step['cutover']}{held}")
    depth = payload.get("outbox")
    if depth is not None:
        click.echo(f"outbox: {depth['pending']} waiting, {depth['failed']} failed")
    held_conversations = payload["partner_conversations"]
    held_count = payload.get("partner_conversations_count", len(held_conversations))
    shown = (
        f" (the newest {len(held_conversations)} below; --conversations all lists every one)"
        if held_count > len(held_conversations)
        else ""
    )
    click.echo(f"conversations the partner still holds: {held_count}{shown}")
    for item in held_conversations:
        click.echo(
            f"  {item['channel']} {item['conversation_id']} last contact "
            f"{item['last_contact_at']} -> {item['destination']}"
        )


def since_option(text: str | None, now: datetime) -> datetime | None:
    return None if text is None else moment_option(text, now, "--since")


def moment_option(text: str, now: datetime, hint: str) -> datetime:
    """An ISO 8601 time or a duration back from *now*; a usage error naming *hint*."""
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


def customer_option(context: click.Context, param: click.Parameter, text: str | None) -> str | None:
    """``--customer``: normalised like the channel parsers do (its hash is what is matched)."""
    if text is None:
        return None
    try:
        return searched_customer_key(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@cli.group(invoke_without_command=True)
@click.option("--since", default=None, help="ISO 8601 time or a duration back from now (24h).")
@click.option("--channel", type=click.Choice([c.value for c in Channel]), default=None)
@click.option(
    "--customer",
    default=None,
    callback=customer_option,
    help="A phone number (+420…), email address or chat customer id; matched by its keyed "
    "hash, never stored.",
)
@click.option("--provider-id", default=None, help="CallSid, Message-ID or chat message id.")
@click.option("--destination", default=None, help="Where the contact went (partner, hotline…).")
@click.option("--category", type=click.Choice([c.value for c in Category]), default=None)
@click.option("--outcome", type=click.Choice([o.value for o in Outcome]), default=None)
@click.option(
    "--before",
    type=click.IntRange(min=1, max=NO_CAP),
    default=None,
    metavar="ID",
    help="Only ids below ID: the next page after one that ended at ID.",
)
@click.option(
    "--limit", type=click.IntRange(min=1, max=NO_CAP, clamp=True), default=100, show_default=True
)
@FORMAT
@click.pass_context
def interactions(
    ctx: click.Context,
    since: str | None,
    channel: str | None,
    customer: str | None,
    provider_id: str | None,
    destination: str | None,
    category: str | None,
    outcome: str | None,
    before: int | None,
    limit: int,
    output_format: str,
) -> None:
    """What was routed where, and why (newest first); `interactions show ID` for one."""
    if ctx.invoked_subcommand is not None:
        return
    from router.service.records import InteractionSearch

    search = InteractionSearch(
        since=since_option(since, datetime.now(UTC)),
        channel=channel,
        provider_id=provider_id,
        destination=destination,
        category=category,
        outcome=outcome,
        before=before,
        limit=limit,
    )
    records = on_backend(lambda backend: backend.interactions(search, customer=customer))
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
    if len(records) == limit:
        click.echo(f"(more may follow: add --before {records[-1]['id']})", err=True)


@interactions.command("show")
@click.argument("interaction_id", metavar="ID", type=click.IntRange(min=1, max=NO_CAP))
@FORMAT
def interactions_show(interaction_id: int, output_format: str) -> None:
    """Everything about one contact: decision, attempts, feedback, recordings, forward."""
    from router.cli.archive import render_detail

    detail = on_backend(lambda backend: backend.interaction(interaction_id))
    if detail is None:
        raise click.ClickException(f"there is no interaction {interaction_id}")
    if output_format == "json":
        emit_json(detail)
    else:
        click.echo(render_detail(detail))


#: ``--until`` of the commands that cover a period (``--since`` has a default of each's own)
UNTIL = click.option(
    "--until",
    default=None,
    help="End of the period (exclusive), written like --since  [default: now].",
)


def period_options(since: str, until: str | None) -> tuple[datetime, datetime]:
    """``--since`` and ``--until`` as times; a usage error when the period is empty."""
    now = datetime.now(UTC)
    since_at = moment_option(since, now, "--since")
    until_at = now if until is None else moment_option(until, now, "--until")
    if since_at >= until_at:
        raise click.BadParameter(
            f"the period is empty: {iso(since_at)} is not before {iso(until_at)}",
            param_hint="--since/--until",
        )
    return since_at, until_at


@cli.command("report")
@click.option(
    "--since",
    default=DEFAULT_SINCE,
    show_default=True,
    help="Start of the period: ISO 8601 time or a duration back from now (24h, 7d).",
)
@UNTIL
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "table", "json", "csv"]),
    default="text",
    show_default=True,
    help="text (or table) for people, json, or csv: the per-destination figures.",
)
@click.option(
    "--per-day",
    is_flag=True,
    help="With --format csv: the per-day series (contacts by category) instead.",
)
def report_command(since: str, until: str | None, output_format: str, per_day: bool) -> None:
    """What contacts went where over a period, and what that cost.

    Counts per channel, destination and category, and per day; each handled contact priced
    by the costs of the routing version in force on its day: a call is billable when
    answered, an email or chat when delivered (a voicemail is not)."""
    from router.core.report import render_csv, render_days_csv

    if per_day and output_format != "csv":
        raise click.BadParameter(
            "--per-day chooses the CSV table; the text and the JSON always show the days",
            param_hint="--per-day",
        )
    since_at, until_at = period_options(since, until)
    result = on_backend(lambda backend: backend.report(since=since_at, until=until_at))
    if output_format == "json":
        emit_json(result.model_dump(mode="json"))
    elif output_format == "csv":
        click.echo(render_days_csv(result) if per_day else render_csv(result), nl=False)
    else:
        click.echo(render_text(result))


@cli.command("statement")
@click.option(
    "--month",
    default=None,
    help="YYYY-MM, a month of the routing timezone  [default: the previous month].",
)
@table_format_option("csv: one row per line, to hold against the invoice.")
def statement_command(month: str | None, output_format: str) -> None:
    """A month's handled contacts at external destinations, priced line by line.

    Per destination and channel, the days at one price (the routing version in force on
    each day), handled contacts, the unit price and the amount; voicemails counted apart,
    not billed. Checks the partner's monthly invoice."""
    from router.core.statement import parse_month, render_csv, render_table

    try:
        chosen = None if month is None else parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from exc
    result = on_backend(lambda backend: backend.statement(chosen))
    print_figures(result, output_format, render_table, render_csv)


@cli.command("staffing")
@click.option(
    "--since",
    default=STAFFING_SINCE,
    show_default=True,
    help="Start of the period of recorded calls: ISO 8601 time or a duration back from now.",
)
@UNTIL
@click.option(
    "--target",
    default=DEFAULT_TARGET,
    show_default=True,
    help="PERCENT/SECONDS: answer PERCENT % of calls within SECONDS seconds.",
)
@click.option(
    "--patience",
    default=None,
    help="Callers' mean patience (60s, 2m): Erlang A, callers hang up when kept waiting "
    "[default: Erlang C, nobody hangs up].",
)
@table_format_option()
def staffing_command(
    since: str, until: str | None, target: str, patience: str | None, output_format: str
) -> None:
    """Agents the in-house hotline needs per hour of the week (Erlang C, or Erlang A).

    Recorded calls are replayed through the routing in force and through its baseline (all
    in-house, as before outsourcing); handle times are the answered calls' talk times."""
    from router.core.durations import parse_duration
    from router.core.staffing import render_csv, render_table

    since_at, until_at = period_options(since, until)
    try:
        wanted = parse_target(target)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from exc
    try:
        mean_patience = None if patience is None else parse_duration(patience)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--patience") from exc
    result = on_backend(
        lambda backend: backend.staffing(
            since=since_at, until=until_at, target=wanted, patience=mean_patience
        )
    )
    print_figures(result, output_format, render_table, render_csv)


@cli.command("sla")
@click.option(
    "--since",
    default=SLA_SINCE,
    show_default=True,
    help="Start of the period of contacts received: ISO 8601 time or a duration back from now.",
)
@UNTIL
@table_format_option()
def sla_command(since: str, until: str | None, output_format: str) -> None:
    """Did the partner keep the contract? Service levels of the external destinations.

    Answer rate, time to answer (p80), resolution rate and average rating per destination
    and channel, against the sla: targets of the routing in force now."""
    from router.core.sla import render_csv, render_table

    since_at, until_at = period_options(since, until)
    result = on_backend(lambda backend: backend.sla(since=since_at, until=until_at))
    print_figures(result, output_format, render_table, render_csv)


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
    result = on_backend(lambda backend: backend.apply(document, reason=reason, actor=actor))
    if output_format == "json":
        emit_json(result)
    elif not result["changed"]:
        click.echo("routing unchanged: the document equals the current version")
    else:
        click.echo(f"applied as version {result['version']}")


@config.command("show")
@click.option("--version", "number", type=int, default=None, help="A past version.")
@click.option("--format", "output_format", type=click.Choice(["yaml", "json"]), default="yaml")
def config_show(number: int | None, output_format: str) -> None:
    """Print the routing document in force (or a past version)."""
    data = on_backend(lambda backend: backend.document(number))
    if output_format == "json":
        emit_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)


@config.command("history")
@click.option("--limit", type=click.IntRange(min=1, max=NO_CAP, clamp=True), default=None)
@FORMAT
def config_history(limit: int | None, output_format: str) -> None:
    """Every routing version, newest first: who, when, why."""
    versions = on_backend(lambda backend: backend.history(limit))
    if output_format == "json":
        emit_json(versions)
        return
    for item in versions:
        click.echo(
            f"v{item['version']:<5} {item['created_at']}  {item['kind']:8} {item['actor']:20} "
            f"{item['reason']}"
        )


@config.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--impact", is_flag=True, help="Replay recorded contacts through A and B.")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@FORMAT
def config_diff(a: str, b: str, impact: bool, days: int, output_format: str) -> None:
    """What changes from A to B (each a version number or a document file)."""
    diff = on_backend(lambda backend: backend.diff(a, b, impact=impact, days=days))
    if diff.impact is not None:
        if output_format == "json":
            emit_json({"changes": diff.changes, "impact": diff.impact})
            return
        print_impact(diff.impact, days)
    if output_format == "json":
        emit_json(diff.changes)
        return
    if not diff.changes:
        click.echo("no differences")
    for change in diff.changes:
        click.echo(f"{change['path']}: {_show(change['from'])} -> {_show(change['to'])}")


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
    result = on_backend(lambda backend: backend.revert(version, reason=reason, actor=actor))
    if output_format == "json":
        emit_json(result)
    else:
        click.echo(f"version {version} is current again as version {result['version']}")


def print_impact(preview: dict[str, Any], days: int) -> None:
    """*preview* as Impact.as_json() gives it."""
    click.echo(
        f"impact: replaying the {preview['contacts']} contacts recorded in the last {days} day(s)"
    )
    if not preview["moved"]:
        click.echo("  no contact would have gone elsewhere")
    for channel, per_day in preview["moved"].items():
        total = sum(per_day.values())
        click.echo(f"  {channel}: {total} contact(s) would have gone elsewhere")
        for day, count in per_day.items():
            click.echo(f"    {day}: {count}")
        for move, count in preview["moves"][channel].items():
            click.echo(f"    {move}: {count}")


# -- migration: cut-over, rollback, resume, plans ------------------------------------------------

CHANNEL_OR_ALL = click.Choice([*(c.value for c in Channel), "all"])
CATEGORY_OR_ALL = click.Choice([*(c.value for c in Category), "all"])


@cli.command("cutover")
@click.argument("channel", type=CHANNEL_OR_ALL)
@click.argument("category", type=CATEGORY_OR_ALL)
@click.argument("percent", type=click.FloatRange(0, 100))
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option("--dry-run", is_flag=True, help="Change nothing; show who would go elsewhere.")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True)
@ACTOR
@FORMAT
def cutover_command(
    channel: str,
    category: str,
    percent: float,
    reason: str,
    dry_run: bool,
    days: int,
    actor: str,
    output_format: str,
) -> None:
    """Route PERCENT of CHANNEL × CATEGORY customers by target ("all" for every one)."""
    change = Cutover(
        channel=None if channel == "all" else Channel(channel),
        category=None if category == "all" else Category(category),
        percent=percent,
        reason=require_reason(reason),
        actor=actor,
    )
    if dry_run:
        preview = on_backend(lambda backend: backend.cutover_preview(change, days=days))
        if output_format == "json":
            emit_json(preview)
            return
        click.echo(f"dry run against version {preview['version']}: nothing changed")
        print_impact(preview, days)
        return
    result = on_backend(lambda backend: backend.cutover(change))
    if output_format == "json":
        emit_json(result)
    else:
        click.echo(f"{channel} {category} at {percent:g} % as version {result['version']}")


@cli.command("rollback")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.option(
    "--channel",
    type=click.Choice([c.value for c in Channel]),
    default=None,
    help="Only this channel [default: all].",
)
@click.option(
    "--for",
    "for_",
    default=None,
    metavar="DURATION",
    help="Return to the current routing by itself after 90s, 15m, 24h, 2d, …",
)
@ACTOR
@FORMAT
def rollback_command(
    reason: str, channel: str | None, for_: str | None, actor: str, output_format: str
) -> None:
    """Send every new contact (of one channel, or all) to baseline, at once.

    Works on the database directly, so it works while the HTTP service is down."""
    reason = require_reason(reason)
    try:
        duration = parse_for(for_)
    except MigrationError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from exc
    change = Rollback(
        reason=reason,
        actor=actor,
        channel=Channel(channel) if channel else None,
        duration=duration,
        duration_text=for_,
    )
    result = on_backend(lambda backend: backend.rollback(change))
    if output_format == "json":
        emit_json(result)
        return
    scope = channel or "all channels"
    ends = (
        f"; the routing from before comes back at {result['until']}"
        if result.get("until")
        else "; it stands until routing is changed (`switchboard resume` to undo)"
    )
    click.echo(f"rolled back {scope} as version {result['version']}{ends}")


@cli.command("resume")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@ACTOR
@FORMAT
def resume_command(reason: str, actor: str, output_format: str) -> None:
    """End the rollback in force: the routing from before it comes back."""
    reason = require_reason(reason)
    result = on_backend(lambda backend: backend.resume(reason=reason, actor=actor))
    if output_format == "json":
        emit_json(result)
    else:
        click.echo(f"resumed: the routing from before the rollback is version {result['version']}")


@cli.group()
def plan() -> None:
    """Scheduled cut-over steps, executed by the service."""


@plan.command("apply")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@ACTOR
@FORMAT
def plan_apply(file: Path, actor: str, output_format: str) -> None:
    """Schedule the steps in FILE (a YAML list of {at, reason, cutover})."""
    try:
        steps = parse_plan(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise click.ClickException(f"{file}: no such file") from exc
    except PlanInvalid as exc:
        raise click.ClickException(f"{file} is not a valid plan:\n{exc}") from exc
    scheduled = on_backend(lambda backend: backend.schedule_plan(steps, actor=actor))
    if output_format == "json":
        emit_json(scheduled)
        return
    for item in scheduled:
        click.echo(f"scheduled #{item['id']} at {item['at']}: {item['reason']}")


@plan.command("show")
@click.option("--all", "show_all", is_flag=True, help="Also executed and cancelled steps.")
@FORMAT
def plan_show(show_all: bool, output_format: str) -> None:
    """Pending plan steps (in order)."""
    steps = on_backend(lambda backend: backend.plan_steps(include_done=show_all))
    if output_format == "json":
        emit_json(steps)
        return
    if not steps:
        click.echo("no pending plan steps")
    for item in steps:
        click.echo(
            f"#{item['id']} {item['at']} {item['status']:9} {item['reason']}  "
            f"{json.dumps(item['cutover'])}"
            + (f"  -> v{item['version']}" if item.get("version") else "")
        )


@plan.command("cancel")
@click.argument("step", type=int, required=False)
@FORMAT
def plan_cancel(step: int | None, output_format: str) -> None:
    """Drop every pending step (or just STEP)."""
    count = on_backend(lambda backend: backend.cancel_plan(step))
    if step is not None and count == 0:
        raise click.ClickException(f"there is no pending step #{step}")
    if output_format == "json":
        emit_json({"cancelled": count})
    else:
        click.echo(f"cancelled {count} pending step(s)")


# -- the classifier ---------------------------------------------------------------------------


@cli.command("classify")
@click.argument("text", required=False)
@click.option("--lang", default=None, help="The message's language (cs, sk, pl, sl, ru, en, de).")
@click.option(
    "--eval",
    "eval_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help='Score a labelled JSON-lines file: {"text", "label", "lang"?} per line.',
)
@FORMAT
def classify_command(
    text: str | None, lang: str | None, eval_file: Path | None, output_format: str
) -> None:
    """Explain how TEXT is classified (admin, product or unknown), or --eval a test set."""
    if (text is None) == (eval_file is None):
        raise click.UsageError("give either TEXT or --eval FILE")
    if eval_file is not None:
        classify_file(eval_file, output_format)
        return
    assert text is not None
    classified = on_backend(lambda backend: backend.classify(text, lang))
    result = classified.result
    if classified.source is not None and output_format != "json":
        click.echo(f"(classified with the {classified.source})", err=True)
    if output_format == "json":
        emit_json(result)
        return
    click.echo(
        f"{result['category']}  (confidence {result['confidence']:.2f}, "
        f"language {result['language'] or 'unknown'})"
    )
    for match in result["matches"]:
        click.echo(f"  {match['category']:8} {match['weight']:>5g}  {match['rule']}")
    if not result["matches"]:
        click.echo("  no rule matched")


def classify_file(eval_file: Path, output_format: str) -> None:
    """``classify --eval``: score a labelled file with the classifier in force."""
    from router.core.classify import classify, evaluate, parse_examples, render_report

    if through_api():
        raise click.ClickException("--eval works locally: drop --url")
    try:
        examples = parse_examples(eval_file.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError as exc:
        raise click.ClickException(f"{eval_file}: no such file") from exc
    except ValueError as exc:
        raise click.ClickException(f"{eval_file}: {exc}") from exc
    rules, threshold, _ = on_backend(lambda backend: backend.classifier())

    def one(message: str, language: str | None) -> Classification:
        return classify(message, rules, language, min_confidence=threshold)

    report = evaluate(examples, one)
    if output_format == "json":
        emit_json(report.as_json())
    else:
        click.echo(render_report(report))


# -- the outbox -------------------------------------------------------------------------------


@cli.group(invoke_without_command=True)
@click.option("--failed", "only_failed", is_flag=True, help="Only forwards that failed.")
@FORMAT
@click.pass_context
def outbox(ctx: click.Context, only_failed: bool, output_format: str) -> None:
    """Forwards (email, chat hand-offs) waiting for delivery or failed."""
    if ctx.invoked_subcommand is not None:
        return
    rows = on_backend(lambda backend: backend.outbox(only_failed=only_failed))
    if output_format == "json":
        emit_json(rows)
        return
    if not rows:
        click.echo("no failed forwards" if only_failed else "the outbox is empty")
    for row in rows:
        click.echo(
            f"#{row['id']:<6} {row['status']:8} {row['kind']:5} interaction {row['interaction_id']}"
            f" -> {row['destination']} <{row['address']}> ({row['stage']}, "
            f"{row['attempts']} attempt(s)) next {row['next_attempt_at']}"
            + (f"  last error: {row['last_error']}" if row["last_error"] else "")
        )


@outbox.command("retry")
@click.argument("row_id", metavar="ID", type=int)
def outbox_retry(row_id: int) -> None:
    """Try a failed (or waiting) forward again now."""
    if not on_backend(lambda backend: backend.retry_forward(row_id)):
        raise click.ClickException(f"there is no failed or pending forward #{row_id}")
    click.echo(f"forward #{row_id} will be tried again now")


# -- retention ------------------------------------------------------------------------------


@cli.group()
def retention() -> None:
    """Personal data of old contacts (SWITCHBOARD_RETENTION_DAYS)."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Change nothing; count what would be emptied.")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=36_500),
    default=None,
    help="Contacts older than this many days [default: $SWITCHBOARD_RETENTION_DAYS].",
)
@FORMAT
def retention_run(dry_run: bool, days: int | None, output_format: str) -> None:
    """Empty bodies, recording links, comments and delivery errors of old contacts now.

    The contacts themselves stay, and every count of them: reports over old periods do
    not change. The service does this once a day by itself when the setting is on."""
    counts = on_backend(lambda backend: backend.retention(days=days, dry_run=dry_run))
    if output_format == "json":
        emit_json(counts)
        return
    verb = "would empty" if dry_run else "emptied"
    click.echo(
        f"contacts received before {counts['cutoff']} ({counts['days']} days): {verb} "
        f"{counts['payloads']} forward bodies, {counts['recordings']} recording links, "
        f"{counts['comments']} partner comments, {counts['errors']} delivery errors"
    )


# -- tokens ---------------------------------------------------------------------------------


@cli.group()
def token() -> None:
    """Bearer tokens for the operators' HTTP API."""


@token.command("create")
@click.option("--name", required=True, help="Who uses it; recorded as the actor of changes.")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@FORMAT
def token_create(name: str, role: str, output_format: str) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    secret = on_backend(lambda backend: backend.create_token(name, role))
    if output_format == "json":
        emit_json({"name": name, "role": role, "token": secret})
    else:
        click.echo(secret)
        click.echo(
            f"(token for {name}, role {role}: store it now, it is not shown again)", err=True
        )


@token.command("list")
@FORMAT
def token_list(output_format: str) -> None:
    """Tokens by name, with role and whether revoked (never the token itself)."""
    records = on_backend(lambda backend: backend.tokens())
    if output_format == "json":
        emit_json(records)
        return
    for record in records:
        state = f"revoked {record['revoked_at']}" if record["revoked_at"] else "active"
        click.echo(f"{record['name']:24} {record['role']:9} {record['created_at']}  {state}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke a token at once."""
    if not on_backend(lambda backend: backend.revoke_token(name)):
        raise click.ClickException(f"there is no active token named {name!r}")
    click.echo(f"revoked {name}")


def main() -> None:
    """The console script. Once the command is done and its output flushed, the process
    ends without tearing down its modules: that teardown (SQLAlchemy, pydantic) costs a
    quarter of a second the on-call person would otherwise wait for after a rollback."""
    try:
        cli(prog_name="switchboard")
        code: int = 0
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            code = 1
        else:
            code = done.code or 0
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
