"""Benchmark ``sizing``: what a day of a large shop costs in storage (issue #17 item 4).

``python -m bench.run --only sizing [--sizing-interactions N]`` (default 1,000,000) writes N
contacts received over one day, with everything the app keeps beside them, into a PostgreSQL
database (a throwaway server, the project's migrations) and into a SQLite file (the same
migrations), then measures each table and index: rows, heap, indexes, TOAST, and the bytes
per interaction.

What one day holds is the app's own trail of each contact, as of the end of that day, in
the proportions of :data:`DAY_MIX` (per 100 contacts: 45 calls, 35 emails, 20 chats):

* a call: its interaction, one stored reply per webhook step (``webhook_replies``: the
  ``/route`` ``<Dial>``, each ``dial-status``, a voicemail's ``/recorded``; an abandoned
  call's ``/status``), one ``attempts`` row per dial and per voicemail;
* an email or chat message: its interaction, its forward (``outbox``) delivered — the body
  and meta deleted, as the worker leaves it — and the delivery's ``attempts`` row;
* a voicemail also forwards its recording by email (a delivered outbox row and attempt).

Reply bodies are rendered by the real ``integrations/twilio_voice.py`` functions; ids,
hashes and addresses have the app's formats (CallSid, Message-ID, HMAC-SHA256 hex customer
hashes of 700,000 customers per million contacts, so some call twice). The rows are loaded
with ``COPY`` (PostgreSQL) and ``executemany`` (SQLite) into the indexed tables, then
``VACUUM ANALYZE`` (``VACUUM``/``ANALYZE`` on SQLite): the steady state of a day's tables,
not the bloat of a busy hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.harness import LoadOptions, Section, markdown_table
from bench.scaling import stored_time
from integrations import twilio_voice
from router.store import create_engine, migrate
from tests.pg_server import PostgresServer, start_postgres

PUBLIC_URL = "https://switchboard.shop.example"
DAY = datetime(2026, 12, 1, tzinfo=UTC)
VERSION = 1
#: distinct customers per contact: some call, write or chat more than once a day
CUSTOMERS_PER_CONTACT = 0.7
DESTINATIONS = ("partner", "hotline")
PHONES = {"partner": "+420800100200", "hotline": "+420222333444"}
MAILBOXES = {"partner": "eshop@partner.example", "hotline": "produkty@eshop.example"}
CHAT_URLS = {
    "partner": "https://partner.example/hooks/chat",
    "hotline": "https://eshop.example/hooks/chat",
}
FALLBACK = {"partner": "hotline", "hotline": "partner"}
VOICE = "/webhooks/twilio/voice"


@dataclass(frozen=True, slots=True)
class Shape:
    """One kind of contact as it stands at the end of its day: what the app stored for it."""

    name: str
    channel: str
    per_hundred: int
    #: webhook steps answered (one ``webhook_replies`` row each)
    steps: tuple[str, ...] = ()
    #: DialCallStatus of each dial (one ``attempts`` row each)
    dials: tuple[str, ...] = ()
    voicemail: bool = False
    #: a forward (``outbox``) and its delivery (``attempts``)
    forward: bool = False


#: Per 100 contacts of a day (index modulo 100, in this order): 45 calls, 35 emails, 20
#: chats (SPEC's 80/20 admin/product split is kept by the category, index modulo 5).
DAY_MIX: tuple[Shape, ...] = (
    Shape("call abandoned in the menu", "phone", 2, steps=("status",)),
    Shape("call answered", "phone", 37, steps=("route", "dial-status 1"), dials=("completed",)),
    Shape(
        "call answered by the fallback",
        "phone",
        4,
        steps=("route", "dial-status 1", "dial-status 2"),
        dials=("no-answer", "completed"),
    ),
    Shape(
        "call to voicemail",
        "phone",
        2,
        steps=("route", "dial-status 1", "dial-status 2", "recorded"),
        dials=("no-answer", "busy"),
        voicemail=True,
        forward=True,
    ),
    Shape("email", "email", 35, forward=True),
    Shape("chat message", "chat", 20, forward=True),
)
assert sum(shape.per_hundred for shape in DAY_MIX) == 100


def shape_of(index: int) -> Shape:
    slot = index % 100
    for shape in DAY_MIX:
        if slot < shape.per_hundred:
            return shape
        slot -= shape.per_hundred
    raise AssertionError("DAY_MIX covers 100 slots")


@dataclass(frozen=True, slots=True)
class Expected:
    """Rows a day of *interactions* contacts leaves, by table."""

    interactions: int
    webhook_replies: int
    attempts: int
    outbox: int


def expected_rows(interactions: int) -> Expected:
    shapes = [shape_of(index) for index in range(interactions)]
    return Expected(
        interactions=interactions,
        webhook_replies=sum(len(shape.steps) for shape in shapes),
        attempts=sum(len(shape.dials) + shape.voicemail + shape.forward for shape in shapes),
        outbox=sum(shape.forward for shape in shapes),
    )


INTERACTION_COLUMNS = (
    "id", "channel", "provider_id", "customer_hash", "category", "category_source", "rule",
    "confidence", "side", "destination", "first_destination", "reason", "version", "bucket",
    "language", "received_at", "decided_at", "updated_at", "outcome", "delivery_failed",
    "dial_status", "fallback_status", "call_status", "duration_seconds", "recording_url",
    "conversation_id", "handle_seconds",
)  # fmt: skip
REPLY_COLUMNS = ("provider_id", "step", "body", "created_at")
ATTEMPT_COLUMNS = (
    "interaction_id", "at", "kind", "number", "destination", "address", "status", "error",
    "seconds", "url", "provider_ref",
)  # fmt: skip
OUTBOX_COLUMNS = (
    "interaction_id", "kind", "destination", "address", "external", "fallback",
    "fallback_address", "fallback_external", "stage", "status", "attempts", "next_attempt_at",
    "claimed_until", "last_error", "payload", "meta", "created_at", "updated_at",
    "delivered_at",
)  # fmt: skip


@dataclass(slots=True)
class Day:
    """The rows of one generated day, table by table (tuples in the column orders above)."""

    interactions: list[tuple[Any, ...]]
    webhook_replies: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]


def dial_action(attempt: int, destination: str) -> str:
    return f"{PUBLIC_URL}{VOICE}/dial-status?attempt={attempt}&destination={destination}"


def reply_body(step: str, shape: Shape, destination: str) -> tuple[str, str]:
    """(the stored step: path and query, the TwiML answered) of one webhook step."""
    if step == "route":
        body = twilio_voice.render_dial(
            address=PHONES[destination], action=dial_action(1, destination)
        )
        return f"{VOICE}/route", body
    if step.startswith("dial-status"):
        attempt = int(step.split()[1])
        dialled = destination if attempt == 1 else FALLBACK[destination]
        path = f"{VOICE}/dial-status?attempt={attempt}&destination={dialled}"
        if shape.dials[attempt - 1] == "completed":
            return path, twilio_voice.render_hangup()
        if attempt == 1:
            body = twilio_voice.render_dial(
                address=PHONES[FALLBACK[destination]], action=dial_action(2, FALLBACK[destination])
            )
            return path, body
        body = twilio_voice.render_voicemail(
            prompt="Zanechte nám prosím vzkaz po zaznění tónu, ozveme se vám.",
            language="cs-CZ",
            action=f"{PUBLIC_URL}{VOICE}/recorded?destination={destination}",
        )
        return path, body
    if step == "recorded":
        return f"{VOICE}/recorded?destination={destination}", twilio_voice.render_hangup()
    return f"{VOICE}/status", twilio_voice.render_empty()


def generate(count: int) -> Day:
    """*count* contacts of :data:`DAY`, deterministic (the index decides everything)."""
    day = Day([], [], [], [])
    customers = max(1, int(count * CUSTOMERS_PER_CONTACT))
    step = 86_400.0 / max(1, count)
    for index in range(count):
        interaction_id = index + 1
        shape = shape_of(index)
        uid = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=16).hexdigest()
        customer = (index * 7919) % customers
        customer_hash = hashlib.sha256(f"customer-{customer}".encode()).hexdigest()
        bucket = (customer * 37 % 10_000) / 100
        received = DAY + timedelta(seconds=index * step)
        category = "product" if index % 5 == 0 else "admin"
        # admin at 50 % on the partner: half of the admin contacts go there
        destination = "partner" if category == "admin" and bucket < 50 else "hotline"
        side = "target" if destination == "partner" else "baseline"
        rule = None
        confidence = None
        conversation = None
        language = "cs-CZ" if shape.channel == "phone" else "cs"
        dial_status = fallback_status = call_status = recording_url = None
        duration = handle = None
        outcome = "delivered"
        source = "text"
        if shape.channel == "phone":
            provider_id = f"CA{uid}"
            source = "digit"
            call_status, duration = "completed", 30 + index % 600
            if not shape.dials:
                category, source, side, destination, outcome = (
                    "unknown", "hangup", "baseline", "", "abandoned"
                )  # fmt: skip
                duration = 3 + index % 30
            else:
                dial_status = shape.dials[0]
                fallback_status = shape.dials[1] if len(shape.dials) > 1 else None
                outcome = "voicemail" if shape.voicemail else "answered"
                handle = None if shape.voicemail else duration - 10
            if shape.voicemail:
                recording_url = (
                    f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Recordings/RE{uid}"
                )
        elif shape.channel == "email":
            provider_id = f"{uid}@mail.example"
            conversation = provider_id
            rule, confidence = f"{category}:cs:objednavka", 0.5 + (index % 50) / 100
        else:
            provider_id = f"msg-{uid}"
            conversation = f"conv-{uid[:20]}"
            rule, confidence = f"{category}:cs:dotaz", 0.5 + (index % 50) / 100
        decided = received + timedelta(milliseconds=3)
        updated = received + timedelta(seconds=duration or 2)
        day.interactions.append(
            (
                interaction_id, shape.channel, provider_id, customer_hash, category, source,
                rule, confidence, side, destination, destination,
                "target" if side == "target" else "baseline", VERSION, bucket, language,
                received, decided, updated, outcome, False, dial_status, fallback_status,
                call_status, duration, recording_url, conversation, handle,
            )
        )  # fmt: skip
        for number, status in enumerate(shape.dials, start=1):
            dialled = destination if number == 1 else FALLBACK[destination]
            day.attempts.append(
                (
                    interaction_id, received + timedelta(seconds=25 * number), "dial", number,
                    dialled, PHONES[dialled], status, None,
                    handle if status == "completed" else None, None, None,
                )
            )  # fmt: skip
        if shape.voicemail:
            day.attempts.append(
                (
                    interaction_id, updated, "voicemail", 1, destination, None, "completed",
                    None, 40, recording_url, f"RE{uid}",
                )
            )  # fmt: skip
        for step_name in shape.steps:
            path, body = reply_body(step_name, shape, destination or "hotline")
            day.webhook_replies.append((provider_id, path, body, received))
        if shape.forward:
            kind = "chat" if shape.channel == "chat" else "email"
            addresses = CHAT_URLS if kind == "chat" else MAILBOXES
            delivered = updated + timedelta(seconds=1)
            day.outbox.append(
                (
                    interaction_id, kind, destination, addresses[destination],
                    destination == "partner", FALLBACK[destination],
                    addresses[FALLBACK[destination]], FALLBACK[destination] == "partner",
                    "primary", "delivered", 1, received, None, None, None, "{}", received,
                    delivered, delivered,
                )
            )  # fmt: skip
            day.attempts.append(
                (
                    interaction_id, delivered, "delivery", 1, destination,
                    addresses[destination], "delivered", None, None, None, None,
                )
            )  # fmt: skip
    return day


# -- loading -------------------------------------------------------------------------------


async def migrated(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


TABLES: dict[str, tuple[str, ...]] = {
    "interactions": INTERACTION_COLUMNS,
    "webhook_replies": REPLY_COLUMNS,
    "attempts": ATTEMPT_COLUMNS,
    "outbox": OUTBOX_COLUMNS,
}


def rows_of(day: Day, table: str) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = getattr(day, table)
    return found


async def load_postgres(url: str, day: Day) -> None:
    """COPY the day into the migrated database at *url*, then VACUUM ANALYZE."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        for table, columns in TABLES.items():
            await connection.copy_records_to_table(
                table, records=rows_of(day, table), columns=list(columns)
            )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('interactions', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM interactions))"
        )
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return stored_time(value)
    if isinstance(value, bool):
        return int(value)
    return value


def load_sqlite(path: Path, day: Day) -> None:
    with sqlite3.connect(path) as connection:
        for table, columns in TABLES.items():
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                ([sqlite_value(value) for value in row] for row in rows_of(day, table)),
            )
    connection.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("VACUUM")
        connection.execute("ANALYZE")
    connection.close()


# -- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relation:
    """A table (its heap, indexes and TOAST) or an index, in bytes."""

    name: str
    table: str
    rows: int
    heap: int
    indexes: int
    total: int


def postgres_sizes(server: PostgresServer, database: str) -> list[Relation]:
    """Every table of the public schema and every index, largest first."""
    tables = server.psql(
        "SELECT c.relname, pg_relation_size(c.oid), pg_indexes_size(c.oid), "
        "pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'",
        database,
    )
    found = []
    for line in tables.splitlines():
        name, heap, indexes, total = line.split("|")
        (count,) = server.psql(f'SELECT count(*) FROM "{name}"', database).split()
        found.append(Relation(name, name, int(count), int(heap), int(indexes), int(total)))
    indexes = server.psql(
        "SELECT i.relname, t.relname, pg_relation_size(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'",
        database,
    )
    for line in indexes.splitlines():
        name, table, size = line.split("|")
        found.append(Relation(name, table, -1, 0, int(size), int(size)))
    return sorted(found, key=lambda relation: -relation.total)


def sqlite_sizes(path: Path) -> tuple[int, list[tuple[str, str, int]]]:
    """(file bytes, [(name, table it belongs to, bytes)]) from SQLite's ``dbstat``."""
    with sqlite3.connect(path) as connection:
        try:
            rows = connection.execute(
                "SELECT d.name, coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
                "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY d.name"
            ).fetchall()
        except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
            rows = []
    connection.close()
    return path.stat().st_size, [(str(a), str(b), int(c)) for a, b, c in rows]


def mb(size: int) -> str:
    return f"{size / 1024**2:,.1f}"


async def sizing(options: LoadOptions) -> Section:
    count = options.sizing_interactions
    started = time.perf_counter()
    day = await asyncio.to_thread(generate, count)
    generated = time.perf_counter() - started
    expected = expected_rows(count)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        server = await asyncio.to_thread(start_postgres, "sizing")
        try:
            url = server.url
            await migrated(url)
            started = time.perf_counter()
            await load_postgres(url, day)
            pg_seconds = time.perf_counter() - started
            relations = await asyncio.to_thread(postgres_sizes, server, server.dbname)
        finally:
            await asyncio.to_thread(server.stop)
        sqlite_path = work / "sizing.db"
        await migrated(f"sqlite+aiosqlite:///{sqlite_path}")
        started = time.perf_counter()
        await asyncio.to_thread(load_sqlite, sqlite_path, day)
        sqlite_seconds = time.perf_counter() - started
        file_bytes, sqlite_objects = sqlite_sizes(sqlite_path)
    return report(
        count,
        expected,
        relations,
        file_bytes,
        sqlite_objects,
        generated,
        pg_seconds,
        sqlite_seconds,
    )


def report(
    count: int,
    expected: Expected,
    relations: Sequence[Relation],
    file_bytes: int,
    sqlite_objects: Sequence[tuple[str, str, int]],
    generated: float,
    pg_seconds: float,
    sqlite_seconds: float,
) -> Section:
    tables = [relation for relation in relations if relation.rows >= 0]
    indexes = [relation for relation in relations if relation.rows < 0]
    sqlite_by_table: dict[str, int] = {}
    for _, table, size in sqlite_objects:
        sqlite_by_table[table] = sqlite_by_table.get(table, 0) + size
    rows = []
    # the schema's other tables hold nothing or one row: counted in the total only
    small = [relation for relation in tables if relation.rows <= 1]
    for relation in tables:
        if relation in small:
            continue
        rows.append(
            [
                relation.name,
                f"{relation.rows:,}",
                f"{relation.rows / count:.2f}",
                mb(relation.heap),
                mb(relation.indexes),
                mb(relation.total),
                f"{relation.total / count:,.0f}",
                mb(sqlite_by_table.get(relation.name, 0)) if sqlite_objects else "n/a",
            ]
        )
    rows.append(
        [
            f"{len(small)} other tables",
            f"{sum(relation.rows for relation in small):,}",
            "",
            mb(sum(relation.heap for relation in small)),
            mb(sum(relation.indexes for relation in small)),
            mb(sum(relation.total for relation in small)),
            f"{sum(relation.total for relation in small) / count:,.1f}",
            mb(sum(sqlite_by_table.get(relation.name, 0) for relation in small))
            if sqlite_objects
            else "n/a",
        ]
    )
    total = sum(relation.total for relation in tables)
    index_total = sum(relation.indexes for relation in tables)
    rows.append(
        [
            "all tables",
            f"{sum(relation.rows for relation in tables):,}",
            "",
            mb(sum(relation.heap for relation in tables)),
            mb(index_total),
            mb(total),
            f"{total / count:,.0f}",
            mb(file_bytes),
        ]
    )
    index_rows = [
        [relation.name, relation.table, mb(relation.total), f"{relation.total / count:,.1f}"]
        for relation in indexes
        if relation.total > 8192 * 2
    ]
    failures = [
        f"{table}: {got:,} rows, expected {want:,}"
        for table, want in (
            ("interactions", expected.interactions),
            ("webhook_replies", expected.webhook_replies),
            ("attempts", expected.attempts),
            ("outbox", expected.outbox),
        )
        for got in [next((r.rows for r in tables if r.name == table), -1)]
        if got != want
    ]
    mix = ", ".join(f"{shape.per_hundred} % {shape.name}" for shape in DAY_MIX)
    notes = [
        f"{count:,} contacts of one day ({mix}), "
        f"generated in {generated:.0f} s, loaded into PostgreSQL (COPY, indexes in place, "
        f"VACUUM ANALYZE) in {pg_seconds:.0f} s and into SQLite (executemany, VACUUM) in "
        f"{sqlite_seconds:.0f} s.",
        "heap = pg_relation_size (main fork), indexes = pg_indexes_size, total = "
        "pg_total_relation_size (heap, indexes, TOAST, free space and visibility maps); "
        "bytes/contact = total / contacts; SQLite MB = the table's and its indexes' pages "
        "(dbstat), the last row the whole file.",
        f"PostgreSQL: {mb(total)} MB for the day = {total / count:,.0f} bytes per contact, of "
        f"which indexes {mb(index_total)} MB ({index_total / total:.0%}); SQLite file "
        f"{mb(file_bytes)} MB = {file_bytes / count:,.0f} bytes per contact.",
        "",
        "indexes (PostgreSQL):",
        markdown_table(["index", "table", "MB", "bytes/contact"], index_rows),
    ]
    return Section(
        title=f"sizing: one day of {count:,} contacts on PostgreSQL and SQLite",
        headers=[
            "table",
            "rows",
            "rows/contact",
            "heap MB",
            "indexes MB",
            "total MB",
            "bytes/contact",
            "SQLite MB",
        ],
        rows=rows,
        notes=notes,
        failures=failures,
    )
