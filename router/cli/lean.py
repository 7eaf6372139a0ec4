"""The on-call person's fast way: ``switchboard rollback`` and ``resume`` on a SQLite database.

The full command line spends about 430 ms importing SQLAlchemy, pydantic and click before it
touches the database (bench/RESULTS.md); an incident rollback should not. This module does the
two commands with the standard library: it reads the current version, writes the new one in
one ``BEGIN IMMEDIATE`` transaction (so nobody can change routing in between) and prints what
the full command prints. It stores the same row the full path stores — the same document
text, kind, actor, reason, ``restores``, ``expires_at`` and ``channel`` —, which
tests/test_lean_cli.py checks against the full path state by state.

It handles only what it is sure of and otherwise declines (returns None), and the full command
line runs instead, with its messages: another command, an option it does not know or a value
it cannot read, ``--url``, PostgreSQL, a database file that does not exist yet or is not at
the newest schema, a current document that is not in canonical form, a resume without a
rollback in force. Nothing here may import more than the standard library, structlog and the
core's tiny value modules (tests/test_architecture.py checks it).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from router.core.contact import Category, Channel
from router.core.durations import parse_duration
from router.core.stored import canonical_json as canonical
from router.core.stored import return_point
from router.paths import default_database_url, default_var_dir

_SQLITE_PREFIX = "sqlite+aiosqlite:///"
_MIGRATIONS = Path(__file__).resolve().parent.parent / "store" / "migrations" / "versions"
_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"$', re.MULTILINE)
_DEFAULT_TIMEOUT_SECONDS = 5.0
_OPTIONS = frozenset({"--reason", "--channel", "--for", "--actor", "--format"})


def default_actor(environ: Mapping[str, str]) -> str:
    explicit = environ.get("SWITCHBOARD_ACTOR")
    if explicit:
        return explicit
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@dataclass(frozen=True, slots=True)
class Request:
    command: str  # "rollback" or "resume"
    reason: str
    actor: str
    channel: Channel | None
    duration: timedelta | None
    json: bool


@dataclass(frozen=True, slots=True)
class Current:
    version: int
    kind: str
    document: str
    restores: int | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Made:
    version: int
    kind: str
    actor: str
    reason: str
    created_at: datetime
    restores: int | None
    expires_at: datetime | None
    channel: str | None


def parsed(argv: Sequence[str], environ: Mapping[str, str]) -> Request | None:
    """The request, or None for anything the full command line should handle."""
    if not argv or argv[0] not in ("rollback", "resume"):
        return None
    values: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        option = rest.pop(0)
        if option not in _OPTIONS or option in values or not rest:
            return None
        values[option] = rest.pop(0)
    command = argv[0]
    reason = values.get("--reason", "").strip()
    output = values.get("--format", "text")
    if not reason or output not in ("text", "json"):
        return None
    if command == "resume" and ({"--channel", "--for"} & values.keys()):
        return None
    channel: Channel | None = None
    if "--channel" in values:
        if values["--channel"] not in {c.value for c in Channel}:
            return None
        channel = Channel(values["--channel"])
    duration: timedelta | None = None
    if "--for" in values:
        try:
            duration = parse_duration(values["--for"])
        except ValueError:
            return None
    if values.get("--actor") == "":
        return None
    actor = values.get("--actor") or default_actor(environ)
    return Request(command, reason, actor, channel, duration, output == "json")


def database_path(environ: Mapping[str, str]) -> Path | None:
    """The SQLite file of ``SWITCHBOARD_DATABASE_URL`` (or the default), when it exists."""
    url = environ.get("SWITCHBOARD_DATABASE_URL") or default_database_url(default_var_dir(environ))
    if not url.startswith(_SQLITE_PREFIX) or "?" in url:
        return None
    path = Path(url.removeprefix(_SQLITE_PREFIX))
    if not path.name or path.name == ":memory:" or not path.is_file():
        return None
    return path


def timeout_seconds(environ: Mapping[str, str]) -> float:
    # as the settings read it; an invalid value means the default there too
    try:
        value = float(environ.get("SWITCHBOARD_DB_TIMEOUT") or _DEFAULT_TIMEOUT_SECONDS)
    except ValueError:
        return _DEFAULT_TIMEOUT_SECONDS
    return value if 0 < value <= 12 else _DEFAULT_TIMEOUT_SECONDS


def newest_revision() -> str | None:
    """The schema revision the shipped migrations end at (the highest-numbered file)."""
    files = sorted(_MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))
    if not files:
        return None
    found = _REVISION.search(files[-1].read_text(encoding="utf-8"))
    return found.group(1) if found else None


def stored_time(moment: datetime) -> str:
    """A UTC time as the store's UTCDateTime column keeps it on SQLite."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def read_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def rolled_back_document(text: str, channel: Channel | None) -> str | None:
    """*text* with every share (of *channel*, or all) at 0; None unless *text* is a canonical
    document with the full share matrix, the only form this module is sure to redo exactly."""
    data = json.loads(text)
    if not isinstance(data, dict) or canonical(data) != text:
        return None
    cutover = data.get("cutover")
    if not isinstance(cutover, dict) or set(cutover) != {c.value for c in Channel}:
        return None
    for shares in cutover.values():
        if not isinstance(shares, dict) or set(shares) != {c.value for c in Category}:
            return None
    for name in [channel.value] if channel is not None else [c.value for c in Channel]:
        cutover[name] = dict.fromkeys(cutover[name], 0)
    return canonical(data)


def current_version(connection: sqlite3.Connection) -> Current | None:
    row = connection.execute(
        "SELECT version, kind, document, restores, expires_at FROM routing_versions "
        "ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    version, kind, document, restores, expires_at = row
    return Current(version, kind, document, restores, read_time(expires_at))


def next_version(
    connection: sqlite3.Connection, request: Request, current: Current, now: datetime
) -> Made | None:
    """The version *request* makes from *current*, as router/service/versions.py makes it."""
    if request.command == "rollback":
        document = rolled_back_document(current.document, request.channel)
        if document is None:
            return None
        restores = return_point(current.version, current.kind, current.restores, current.expires_at)
        expires_at = now + request.duration if request.duration is not None else None
        channel = request.channel.value if request.channel is not None else None
        return _insert(connection, request, current, now, document, restores, expires_at, channel)
    if current.kind != "rollback" or current.restores is None:
        return None  # nothing to resume: the full command says so
    earlier = connection.execute(
        "SELECT document FROM routing_versions WHERE version = ?", (current.restores,)
    ).fetchone()
    if earlier is None or canonical(json.loads(earlier[0])) != earlier[0]:
        return None
    return _insert(connection, request, current, now, earlier[0], current.restores, None, None)


def _insert(
    connection: sqlite3.Connection,
    request: Request,
    current: Current,
    now: datetime,
    document: str,
    restores: int | None,
    expires_at: datetime | None,
    channel: str | None,
) -> Made:
    made = Made(
        current.version + 1,
        request.command,
        request.actor,
        request.reason,
        now,
        restores,
        expires_at,
        channel,
    )
    connection.execute(
        "INSERT INTO routing_versions (version, kind, actor, reason, document, created_at, "
        "restores, expires_at, channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            made.version,
            made.kind,
            made.actor,
            made.reason,
            document,
            stored_time(now),
            made.restores,
            None if expires_at is None else stored_time(expires_at),
            made.channel,
        ),
    )
    return made


def write(path: Path, request: Request, timeout: float, now: datetime) -> Made | None:
    """One transaction: check the schema, read the current version, add the next one."""
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        # as router/store/engine.py sets up every connection: durable commits, waits
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("BEGIN IMMEDIATE")
        try:
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            current = current_version(connection)
            made = None
            if revision is not None and revision[0] == newest_revision() and current is not None:
                made = next_version(connection, request, current, now)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT" if made is not None else "ROLLBACK")
        return made
    finally:
        connection.close()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def report(request: Request, made: Made) -> None:
    """What the full command prints (router/cli/commands.py), and its log line."""
    if request.command == "rollback":
        _log_rollback(made)
    answer: dict[str, object] = {
        "version": made.version,
        "kind": made.kind,
        "actor": made.actor,
        "reason": made.reason,
        "created_at": iso(made.created_at),
    }
    if made.expires_at is not None:
        answer["until"] = iso(made.expires_at)
    if request.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    elif request.command == "resume":
        print(f"resumed: the routing from before the rollback is version {made.version}")
    else:
        scope = made.channel or "all channels"
        ends = (
            f"; the routing from before comes back at {answer['until']}"
            if made.expires_at is not None
            else "; it stands until routing is changed (`switchboard resume` to undo)"
        )
        print(f"rolled back {scope} as version {made.version}{ends}")


def _log_rollback(made: Made) -> None:
    import logging

    import structlog

    from router.logging import configure_logging

    log_format = os.environ.get("SWITCHBOARD_LOG_FORMAT")
    configure_logging(
        json=None if log_format not in ("json", "console") else log_format == "json",
        level=logging.WARNING,
    )
    # the line router/service/versions.py writes, under its name
    structlog.get_logger("router.service.versions").warning(
        "routing.rolled_back",
        version=made.version,
        actor=made.actor,
        reason=made.reason,
        channel=made.channel or "all",
        until=made.expires_at.isoformat() if made.expires_at else None,
    )


def run(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Do *argv* the lean way and return the exit code, or None to leave it to the full
    command line (which then does all of it: nothing has been written)."""
    if environ.get("SWITCHBOARD_URL"):
        return None
    request = parsed(argv, environ)
    if request is None:
        return None
    path = database_path(environ)
    if path is None:
        return None
    try:
        made = write(path, request, timeout_seconds(environ), datetime.now(UTC))
    except (sqlite3.Error, ValueError):
        # locked past the timeout, unreadable, a stored document that is not JSON: nothing
        # was written, and the full command line explains it in its own words
        return None
    if made is None:
        return None
    report(request, made)
    sys.stdout.flush()
    return 0
