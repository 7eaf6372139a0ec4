"""Benchmark ``scaling``: does Switchboard's work grow with what it has stored?

For each size N (``--scaling-sizes``, default 10,000 and 1,000,000) a SQLite file is migrated
with the project's own migrations, given a routing history written by the service's own
functions (the shipped document 60 days ago, admin cut over to the partner 25 % after 15
days, 100 % after 30), and filled with N synthetic interactions spread over those 60 days:
every channel, the columns the app writes in the formats it writes them (UTC text as
``UTCDateTime`` stores it on SQLite), email threads and chat conversations of several
messages, an outbox row per email and chat message (delivered, bodies deleted, a few
failed, the newest emails still pending) and a stored TwiML reply per call. The fill uses
stdlib ``sqlite3`` ``executemany`` in one transaction: a million rows take seconds, not the
hours the app would need.

Then the real app (``make_app`` under aiohttp's ``TestServer``, in this process) is timed:

* routing cost per call: ``--scaling-calls`` sequential signed ``POST
  /webhooks/twilio/voice/route`` (a new CallSid each) and as many signed ``mime`` emails,
  half of them replies whose ``References`` name a stored message (the thread look-up),
  after a warm-up; CPU of this process per call (client and server share it, and the
  client's part does not depend on N) and wall p50;
* ``GET /api/status``, ``/api/report`` (the default 7 days and ``since=30d``) and
  ``/api/traffic`` (the default 24 hours and the longest, 744): median of several.

The goal (issue #14, goal 6): the cost per call at the largest N within 1.2x the smallest,
and every read within 1 s at the largest N. Each SQL statement the reads run is timed (an
engine event) and the slowest are shown with SQLite's ``EXPLAIN QUERY PLAN``: where the
time goes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode
from uuid import UUID

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event

from bench.harness import Goal, LoadOptions, Section, percentile
from bench.servers import EMAIL_PATH, ROUTE_PATH
from integrations import twilio_voice
from integrations.signing import HEADER, sign
from router.core.contact import Category
from router.logging import configure_logging
from router.service.tokens import Role, create_token
from router.service.versions import cutover, ensure_initial_routing
from router.settings import Settings
from router.store import Store, create_engine, migrate
from router.web.app import make_app
from router.web.appkeys import store_key

PUBLIC_URL = "https://switchboard.bench.example"
TWILIO_TOKEN = "bench-twilio-auth-token"
EMAIL_SECRET = "bench-email-webhook-secret"
CUSTOMER_KEY_SECRET = "bench-customer-key-secret-0123456789"
DAYS = 60
SEED = 20261205
#: Goals of issue #14, goal 6.
FLAT_RATIO = 1.2
READ_SECONDS = 1.0
#: Untimed calls before the timed ones (the first calls compile statements, fill caches).
WARMUP_CALLS = 50
#: Timings of each read; the median is reported.
READ_REPEATS = 5
#: Statements shown with their query plan, slowest first.
PLANS_SHOWN = 6
#: Reads measured for comparison only: the goal is on what operators get by default.
UNGOALED_READS = frozenset({"status conversations=all"})

# The shipped routing document's destinations and addresses (config/routing.yaml).
PARTNER, HOTLINE = "partner", "hotline"
ADDRESSES = {
    (PARTNER, "email"): ("eshop@partner.example", True),
    (HOTLINE, "email"): ("produkty@eshop.example", False),
    (PARTNER, "chat"): ("https://partner.example/hooks/chat", True),
    (HOTLINE, "chat"): ("https://eshop.example/hooks/chat", False),
}
FALLBACK = {HOTLINE: PARTNER, PARTNER: HOTLINE}
DIAL_REPLY = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="{base}/webhooks/twilio/'
    'voice/dial-status?attempt=1&amp;destination={destination}" answerOnBridge="true" '
    'method="POST" timeout="25"><Number>{number}</Number></Dial></Response>'
)
NUMBERS = {PARTNER: "+420800100200", HOTLINE: "+420222333444"}


# -- the synthetic history -------------------------------------------------------------------


def stored_time(moment: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite ``DateTime`` stores a ``UTCDateTime``: UTC, no
    offset, microseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True, slots=True)
class Share:
    """From *since* on, this share of admin contacts was on the target side (version)."""

    since: datetime
    percent: float
    version: int


async def routing_history(url: str, start: datetime) -> list[Share]:
    """Migrate the database and write its routing versions with the service's functions:
    the shipped document at *start*, admin 25 % after 15 days, 100 % after 30."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        store = Store(engine)
        first = await ensure_initial_routing(store, start)
        shares = [Share(start, 0.0, first.version)]
        for day, percent in ((15, 25.0), (30, 100.0)):
            moment = start + timedelta(days=day)
            row = await cutover(
                store,
                None,
                Category.ADMIN,
                percent,
                actor="bench",
                reason=f"admin {percent:.0f} %",
                now=moment,
            )
            shares.append(Share(moment, percent, row.version))
        return shares
    finally:
        await engine.dispose()


def hotline_open(moment: datetime) -> bool:
    """Mon-fri 08:00-17:00 Prague, taken as 07:00-16:00 UTC (winter time) for the fill."""
    return moment.weekday() < 5 and 7 <= moment.hour < 16


@dataclass(slots=True)
class Filled:
    interactions: int = 0
    outbox: int = 0
    replies: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: email Message-IDs stored (provider ids), for replies that name them
    email_ids: list[str] = field(default_factory=list)
    bytes: int = 0


INTERACTION_COLUMNS = (
    "channel, provider_id, customer_hash, category, category_source, rule, confidence, side, "
    "destination, first_destination, reason, version, bucket, language, received_at, "
    "decided_at, updated_at, outcome, delivery_failed, dial_status, fallback_status, "
    "call_status, duration_seconds, recording_url, conversation_id"
)
OUTBOX_COLUMNS = (
    "interaction_id, kind, destination, address, external, fallback, fallback_address, "
    "fallback_external, stage, status, attempts, next_attempt_at, claimed_until, last_error, "
    "payload, meta, created_at, updated_at, delivered_at"
)


def fill(database: Path, count: int, shares: Sequence[Share], now: datetime) -> Filled:
    """Insert *count* interactions received over the last :data:`DAYS` days before *now*,
    with their outbox rows and stored replies, in one transaction."""
    rng = random.Random(SEED)
    started = time.perf_counter()
    span = DAYS * 86_400.0
    start = now - timedelta(seconds=span)
    offsets = sorted(rng.random() * span for _ in range(count))
    customers = max(1, count // 3)
    customer_hashes = [
        hashlib.sha256(f"customer-{index}".encode()).hexdigest() for index in range(customers)
    ]
    buckets = [rng.randrange(10_000) / 100 for _ in range(customers)]
    filled = Filled()
    email_threads: list[tuple[str, str]] = []  # recent (conversation id, category)
    chats: list[tuple[str, str]] = []
    pending_after = now - timedelta(minutes=10)

    def rows() -> Iterator[tuple[Any, ...]]:
        share_index = 0
        for offset in offsets:
            received = start + timedelta(seconds=offset)
            while share_index + 1 < len(shares) and shares[share_index + 1].since <= received:
                share_index += 1
            share = shares[share_index]
            customer = rng.randrange(customers)
            draw = rng.random()
            channel = "phone" if draw < 0.45 else "email" if draw < 0.80 else "chat"
            category = "admin" if rng.random() < 0.78 else "product"
            source = {"phone": "digit", "email": "text", "chat": "text"}[channel]
            conversation: str | None = None
            rule: str | None = None
            confidence: float | None = None
            uid = f"{rng.getrandbits(128):032x}"
            if channel == "phone":
                provider_id = f"CA{uid}"
            elif channel == "email":
                provider_id = f"{uid}@mail.example"
                filled.email_ids.append(provider_id)
                if email_threads and rng.random() < 0.35:
                    conversation, category = email_threads[rng.randrange(len(email_threads))]
                    source = "thread"
                else:
                    conversation = provider_id
                    email_threads.append((conversation, category))
                    if len(email_threads) > 500:
                        email_threads.pop(0)
            else:
                provider_id = f"msg-{uid}"
                if chats and rng.random() < 0.75:
                    conversation, category = chats[rng.randrange(len(chats))]
                    source = "thread"
                else:
                    conversation = f"conv-{uid[:20]}"
                    chats.append((conversation, category))
                    if len(chats) > 200:
                        chats.pop(0)
            if source == "text":
                rule = f"{category}.keywords"
                confidence = round(0.5 + rng.random() / 2, 3)
            abandoned = channel == "phone" and rng.random() < 0.03
            side = (
                "target"
                if category == "admin" and buckets[customer] < share.percent
                else "baseline"
            )
            destination = PARTNER if side == "target" else HOTLINE
            reason = side
            if destination == HOTLINE and not hotline_open(received):
                destination, reason = PARTNER, "after_hours"
            dial_status = call_status = None
            duration: int | None = None
            if abandoned:
                category, source, side, reason, destination = (
                    "unknown", "hangup", "baseline", "abandoned", ""
                )  # fmt: skip
                rule = None
                outcome = "abandoned"
                call_status, duration = "completed", rng.randrange(3, 40)
            elif channel == "phone":
                outcome = "answered" if rng.random() < 0.9 else "voicemail"
                dial_status = "completed" if outcome == "answered" else "no-answer"
                call_status, duration = "completed", rng.randrange(30, 900)
            else:
                # only emails wait (SMTP is unset here); a pending chat hand-off would be
                # sent by the app's worker while it is timed
                waiting = channel == "email" and received >= pending_after
                outcome = "queued" if waiting else "delivered"
            updated = received + timedelta(seconds=duration or 2)
            filled.by_channel[channel] = filled.by_channel.get(channel, 0) + 1
            yield (
                channel,
                provider_id,
                customer_hashes[customer],
                category,
                source,
                rule,
                confidence,
                side,
                destination,
                destination,
                reason,
                share.version,
                buckets[customer],
                "cs-CZ" if channel == "phone" else "cs",
                stored_time(received),
                stored_time(received + timedelta(milliseconds=3)),
                stored_time(updated),
                outcome,
                0,
                dial_status,
                None,
                call_status,
                duration,
                None,
                conversation,
            )

    with sqlite3.connect(database) as connection:
        # a throw-away file: no journal and no syncs while it is filled (the app turns WAL
        # and synchronous=FULL back on when it connects)
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-200000")
        connection.executemany(
            f"INSERT INTO interactions ({INTERACTION_COLUMNS}) VALUES ({', '.join('?' * 25)})",
            rows(),
        )
        filled.interactions = count
        forwards = connection.execute(
            "SELECT id, channel, destination, received_at, outcome FROM interactions "
            "WHERE channel IN ('email', 'chat') ORDER BY id"
        ).fetchall()
        connection.executemany(
            f"INSERT INTO outbox ({OUTBOX_COLUMNS}) VALUES ({', '.join('?' * 19)})",
            (outbox_row(rng, *row) for row in forwards),
        )
        filled.outbox = len(forwards)
        calls = connection.execute(
            "SELECT provider_id, destination, received_at FROM interactions "
            "WHERE channel = 'phone' AND reason != 'abandoned' ORDER BY id"
        ).fetchall()
        connection.executemany(
            "INSERT INTO webhook_replies (provider_id, step, body, created_at) VALUES (?, ?, ?, ?)",
            (
                (
                    provider_id,
                    ROUTE_PATH,
                    DIAL_REPLY.format(
                        base=PUBLIC_URL, destination=destination, number=NUMBERS[destination]
                    ),
                    received_at,
                )
                for provider_id, destination, received_at in calls
            ),
        )
        filled.replies = len(calls)
    connection.close()
    filled.seconds = time.perf_counter() - started
    filled.bytes = database.stat().st_size
    return filled


def outbox_row(
    rng: random.Random,
    interaction_id: int,
    kind: str,
    destination: str,
    received_at: str,
    outcome: str,
) -> tuple[Any, ...]:
    """The forward the app writes with an email or chat interaction, as it stands later:
    delivered (body and meta deleted), 0.5 % failed, the newest emails pending."""
    address, external = ADDRESSES[(destination, kind)]
    fallback = FALLBACK[destination]
    fallback_address, fallback_external = ADDRESSES[(fallback, kind)]
    pending = outcome == "queued"
    failed = not pending and rng.random() < 0.005
    status = "pending" if pending else "failed" if failed else "delivered"
    return (
        interaction_id,
        kind,
        destination,
        address,
        external,
        fallback,
        fallback_address,
        fallback_external,
        "fallback" if failed else "primary",
        status,
        8 if failed else 0 if pending else 1,
        received_at,
        None,
        "550 mailbox unavailable" if failed else None,
        b"Subject: bench\r\n\r\nwaiting" if pending or failed else None,
        '{"category": "admin"}' if pending or failed else "{}",
        received_at,
        received_at,
        None if pending or failed else received_at,
    )


# -- the requests ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    path: str
    body: bytes
    headers: dict[str, str]


def phone_calls(count: int, rng: random.Random) -> list[Prepared]:
    """Signed Gathers (digit 1, a new CallSid, a random caller), signed before timing."""
    calls = []
    for _ in range(count):
        form = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": f"CA{rng.getrandbits(128):032x}",
            "CallStatus": "in-progress",
            "Digits": "1",
            "From": f"+420{rng.randrange(600_000_000, 800_000_000)}",
            "To": "+420222000111",
        }
        signature = twilio_voice.sign(TWILIO_TOKEN, PUBLIC_URL + ROUTE_PATH, form)
        calls.append(
            Prepared(
                ROUTE_PATH,
                urlencode(form).encode("ascii"),
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                },
            )
        )
    return calls


def emails(count: int, rng: random.Random, stored: Sequence[str]) -> list[bytes]:
    """Short plain-text emails; every other one a reply naming a stored message."""
    messages = []
    for index in range(count):
        message_id = f"{UUID(int=rng.getrandbits(128))}@bench.example"
        thread = ""
        if index % 2 == 1 and stored:
            parent = stored[rng.randrange(len(stored))]
            thread = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        messages.append(
            (
                f"From: customer{rng.randrange(100_000)}@example.cz\r\n"
                "To: shop@eshop.example\r\n"
                f"Subject: Dotaz k objednavce {rng.randrange(10**6)}\r\n"
                f"Message-ID: <{message_id}>\r\n{thread}"
                "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                "Dobry den, kdy mi prijde zasilka? Objednavku jsem zaplatil minuly tyden.\r\n"
            ).encode()
        )
    return messages


# -- timing the app ---------------------------------------------------------------------------


@dataclass(slots=True)
class Statement:
    sql: str
    parameters: Any
    seconds: float


@dataclass(slots=True)
class StatementLog:
    """Every statement the app's engine executes while :attr:`on`, with its time."""

    on: bool = False
    started: list[float] = field(default_factory=list)
    seen: list[Statement] = field(default_factory=list)

    def before(self, *args: Any) -> None:
        self.started.append(time.perf_counter())

    def after(self, conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
        began = self.started.pop() if self.started else time.perf_counter()
        if self.on:
            self.seen.append(Statement(sql, parameters, time.perf_counter() - began))


@dataclass(slots=True)
class Calls:
    cpu_ms: float
    p50_ms: float
    statuses: dict[int, int]


@dataclass(slots=True)
class Read:
    name: str
    seconds: list[float]
    status: int
    size: int
    statements: list[Statement]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(slots=True)
class Measured:
    size: int
    filled: Filled
    phone: Calls
    email: Calls
    reads: list[Read]
    plans: list[tuple[Statement, list[str]]]


READS = (
    ("status", "/api/status"),
    # every held conversation listed: what the default's cap of 100 saves
    ("status conversations=all", "/api/status?conversations=all"),
    ("report (7d)", "/api/report"),
    ("report since=30d", "/api/report?since=30d"),
    ("traffic (24h)", "/api/traffic"),
    ("traffic hours=744", "/api/traffic?hours=744"),
)


async def timed_calls(
    client: TestClient[Any, Any], requests: Sequence[Prepared], expect: bytes
) -> Calls:
    """POST *requests* one after another: CPU of this process per call, wall p50."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu = time.process_time()
    for request in requests:
        began = time.perf_counter()
        async with client.post(request.path, data=request.body, headers=request.headers) as rsp:
            body = await rsp.read()
            status = rsp.status if expect in body else -rsp.status
        latencies.append(time.perf_counter() - began)
        statuses[status] = statuses.get(status, 0) + 1
    cpu_ms = (time.process_time() - cpu) * 1000 / len(requests)
    latencies.sort()
    return Calls(cpu_ms, percentile(latencies, 50) * 1000, statuses)


def email_requests(messages: Sequence[bytes]) -> list[Prepared]:
    stamp = int(time.time())  # signatures hold 5 minutes: signed just before a batch
    return [
        Prepared(
            EMAIL_PATH,
            raw,
            {"Content-Type": "message/rfc822", HEADER: sign(EMAIL_SECRET, raw, stamp)},
        )
        for raw in messages
    ]


async def measure(work: Path, size: int, calls: int) -> Measured:
    database = work / f"scaling-{size}.db"
    url = f"sqlite+aiosqlite:///{database}"
    now = datetime.now(UTC)
    shares = await routing_history(url, now - timedelta(days=DAYS))
    filled = await asyncio.to_thread(fill, database, size, shares, now)

    engine = create_engine(url)
    try:
        token = await create_token(Store(engine), "bench", Role.VIEWER, datetime.now(UTC))
    finally:
        await engine.dispose()
    settings = Settings(
        database_url=url,
        var_dir=work / f"var-{size}",
        public_url=PUBLIC_URL,
        log_format="json",
        customer_key_secret=CUSTOMER_KEY_SECRET,
        twilio_auth_token=TWILIO_TOKEN,
        email_webhook_secret=EMAIL_SECRET,
    )
    rng = random.Random(SEED + size)
    phone = phone_calls(WARMUP_CALLS + calls, rng)
    mails = emails(WARMUP_CALLS + calls, rng, filled.email_ids)
    log = StatementLog()
    auth = {"Authorization": f"Bearer {token}"}
    async with TestClient(TestServer(make_app(settings))) as client:
        sync_engine = client.app[store_key].engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", log.before)
        event.listen(sync_engine, "after_cursor_execute", log.after)
        await timed_calls(client, phone[:WARMUP_CALLS], b"<Dial")
        phone_result = await timed_calls(client, phone[WARMUP_CALLS:], b"<Dial")
        await timed_calls(client, email_requests(mails[:WARMUP_CALLS]), b"interaction_id")
        email_result = await timed_calls(
            client, email_requests(mails[WARMUP_CALLS:]), b"interaction_id"
        )
        reads = []
        for name, path in READS:
            async with client.get(path, headers=auth) as rsp:  # warm-up
                await rsp.read()
            seconds: list[float] = []
            status, length = 0, 0
            for _ in range(READ_REPEATS):
                log.seen = []
                log.on = True
                began = time.perf_counter()
                async with client.get(path, headers=auth) as rsp:
                    body = await rsp.read()
                    status, length = rsp.status, len(body)
                seconds.append(time.perf_counter() - began)
                log.on = False
            reads.append(Read(name, seconds, status, length, log.seen))
    plans = query_plans(database, reads)
    return Measured(size, filled, phone_result, email_result, reads, plans)


def query_plans(database: Path, reads: Sequence[Read]) -> list[tuple[Statement, list[str]]]:
    """The slowest distinct statements of the reads, with SQLite's plan for each."""
    slowest: dict[str, Statement] = {}
    for read in reads:
        for statement in read.statements:
            known = slowest.get(statement.sql)
            if known is None or statement.seconds > known.seconds:
                slowest[statement.sql] = statement
    chosen = sorted(slowest.values(), key=lambda s: s.seconds, reverse=True)[:PLANS_SHOWN]
    plans = []
    with sqlite3.connect(database) as connection:
        for statement in chosen:
            rows = connection.execute(
                "EXPLAIN QUERY PLAN " + statement.sql, tuple(statement.parameters or ())
            ).fetchall()
            plans.append((statement, [str(row[-1]) for row in rows]))
    connection.close()
    return plans


# -- the report ------------------------------------------------------------------------------


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive numbers, not {text!r}")
    return sizes


def human(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return f"{size:,}"


def verdict(met: bool) -> str:
    return "met" if met else "not met"


def report(results: Sequence[Measured], calls: int) -> Section:
    first, last = results[0], results[-1]
    names = [human(result.size) for result in results]
    headers = ["figure", *(f"at {name}" for name in names), "goal", ""]
    rows: list[list[str]] = []
    per_call: list[tuple[str, Callable[[Measured], float]]] = [
        ("/route: CPU ms per call", lambda m: m.phone.cpu_ms),
        ("/route: wall p50 ms", lambda m: m.phone.p50_ms),
        ("email mime (half replies): CPU ms per email", lambda m: m.email.cpu_ms),
        ("email: wall p50 ms", lambda m: m.email.p50_ms),
    ]
    goals: list[Goal] = []
    for label, pick in per_call:
        values = [pick(result) for result in results]
        ratio = values[-1] / values[0] if values[0] else float("nan")
        goal = f"{human(last.size)}/{human(first.size)} {ratio:.2f}x <= {FLAT_RATIO}x"
        rows.append(
            [label, *(f"{value:.2f}" for value in values), goal, verdict(ratio <= FLAT_RATIO)]
        )
        if "CPU" in label:
            goals.append(
                Goal(
                    key=f"6 {label.split(':')[0]} flat",
                    figure=f"{values[-1]:.2f} ms CPU at {human(last.size)} = {ratio:.2f}x",
                    baseline=f"{values[0]:.2f} ms at {human(first.size)}",
                    target=f"<= {FLAT_RATIO}x",
                    met=ratio <= FLAT_RATIO,
                )
            )
    for index, (name, _) in enumerate(READS):
        values = [result.reads[index].median for result in results]
        measured = [f"GET {name}: median ms", *(f"{value * 1000:,.1f}" for value in values)]
        if name in UNGOALED_READS:
            rows.append([*measured, "(for comparison)", ""])
            continue
        rows.append(
            [
                *measured,
                f"<= {READ_SECONDS * 1000:.0f} ms at {human(last.size)}",
                verdict(values[-1] <= READ_SECONDS),
            ]
        )
        goals.append(
            Goal(
                key=f"6 GET {name}",
                figure=f"{values[-1] * 1000:,.0f} ms at {human(last.size)}",
                baseline=f"{values[0] * 1000:,.0f} ms at {human(first.size)}",
                target=f"<= {READ_SECONDS * 1000:.0f} ms",
                met=values[-1] <= READ_SECONDS,
            )
        )
    notes = ["```"]
    for result in results:
        filled = result.filled
        channels = ", ".join(f"{k} {v:,}" for k, v in sorted(filled.by_channel.items()))
        notes.append(
            f"{human(result.size)}: {filled.interactions:,} interactions ({channels}), "
            f"{filled.outbox:,} outbox rows, {filled.replies:,} stored replies over {DAYS} "
            f"days; filled in {filled.seconds:.1f} s, file {filled.bytes / 1e6:,.0f} MB; "
            "answers: "
            + "; ".join(
                f"{read.name} {read.status} {read.size / 1000:,.0f} KB" for read in result.reads
            )
        )
    notes.append(
        f"{calls} timed calls and {calls} emails per size, one at a time, after {WARMUP_CALLS} "
        "each untimed; CPU is this process's (the in-process client's share does not depend "
        f"on the size); reads: median of {READ_REPEATS} after one untimed."
    )
    notes.append(f"slowest SQL statements of the reads at {human(last.size)}, with their plan:")
    for statement, plan in last.plans:
        sql = " ".join(statement.sql.split())
        notes.append(f"  {statement.seconds * 1000:8.1f} ms  {sql[:160]}")
        notes.extend(f"             plan: {line}" for line in plan)
    notes.append("```")
    failures = []
    for result in results:
        for kind, seen in (("/route", result.phone), ("email", result.email)):
            bad = {status: n for status, n in seen.statuses.items() if status != 200}
            if bad:
                failures.append(f"{human(result.size)} {kind}: answers other than 200 {bad}")
        failures += [
            f"{human(result.size)} GET {read.name}: HTTP {read.status}"
            for read in result.reads
            if read.status != 200
        ]
    return Section(
        title="scaling: routing cost per call and operators' reads, "
        + " vs ".join(names)
        + " stored interactions",
        headers=headers,
        rows=rows,
        notes=notes,
        failures=failures,
        goals=goals,
    )


async def scaling(options: LoadOptions) -> Section:
    sizes = sorted(set(options.scaling_sizes))
    root = logging.getLogger()
    handlers = root.handlers[:]
    with tempfile.TemporaryDirectory(prefix="switchboard-scaling-") as tmp:
        work = Path(tmp)
        # the app logs every contact as in production (JSON), to a file, not the report
        log_file: IO[str] = (work / "switchboard.log").open("w")
        try:
            configure_logging(json=True)
            for handler in root.handlers:
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(log_file)
            results = []
            for size in sizes:
                results.append(await measure(work, size, options.scaling_calls))
                # the next size's file needs the room more than this one's figures do
                (work / f"scaling-{size}.db").unlink(missing_ok=True)
        finally:
            root.handlers[:] = handlers
            log_file.close()
    return report(results, options.scaling_calls)
