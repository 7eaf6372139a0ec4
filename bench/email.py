"""Benchmark ``email``: what Switchboard adds to taking in an email and to forwarding it.

1. **Ingestion.** Signed ``POST /webhooks/email/mime`` of distinct raw RFC 822 messages of
   about 20 KB (a Czech text/plain part and a base64 PDF attachment) to the real service
   (``switchboard serve`` on a SQLite file, SMTP unset so every forward waits in the outbox),
   against a bare aiohttp handler that only reads the same body. Each accepted email must be
   one interaction with exactly one pending forward in the database afterwards.
2. **Outbox delivery.** The service is started again on that database with SMTP pointed at a
   local aiosmtpd sink (its own process) and runs until its outbox is empty; the baseline
   sends the same messages straight to the same sink with aiosmtplib from this process, as the
   worker does: :data:`integrations.smtp.POOL_SIZE` connections opened once and reused,
   batches of :data:`router.outbox.BATCH` at once. So the ratio measures what Switchboard
   adds (claims, message building, bookkeeping), not a connection strategy.
   Both rates are taken at the sink, from its first to its last arrival; every Message-ID must
   arrive exactly once on each side.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import math
import random
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib

from bench.harness import (
    BARE,
    SWITCHBOARD,
    Goal,
    LoadOptions,
    LoadResult,
    PreparedRequest,
    Section,
    free_port,
    log_tail,
    markdown_table,
    median_round,
    process_cpu_seconds,
    server_process,
    side_by_side,
    smtp_sink_process,
    switchboard_environment,
)
from bench.servers import EMAIL_PATH
from bench.webhook import busy, comparison_headers, comparison_rows, ratio
from integrations.signing import HEADER, sign
from integrations.smtp import POOL_SIZE
from router.service.outbox import BATCH

SECRET = "bench-email-webhook-secret"
#: Both servers answer 200 JSON naming the interaction; a body without it is an error.
EXPECTED = b"interaction_id"
#: Where the direct baseline sends (the in-house mailbox of config/routing.yaml).
RECIPIENT = "produkty@eshop.example"
WORKER = "switchboard outbox worker"
DIRECT = f"aiosmtplib direct, {POOL_SIZE} reused connections, batches of {BATCH}"
#: Issue #14 goals 2 and 3: accepting against a bare handler reading the same body, and
#: delivering against aiosmtplib sending the same messages.
ACCEPT_GOAL = 0.25
DELIVERY_GOAL = 0.8
#: Bound of the wait for the outbox to empty: this plus a tenth of a second per message.
DELIVERY_SECONDS = 30.0

PEOPLE = [
    ("Jana Nováková", "jana.novakova"),
    ("Petr Svoboda", "petr.svoboda"),
    ("Lucie Dvořáková", "lucie.dvorakova"),
    ("Tomáš Černý", "tomas.cerny"),
    ("Kateřina Procházková", "katerina.prochazkova"),
    ("Jiří Kučera", "jiri.kucera"),
    ("Veronika Veselá", "veronika.vesela"),
    ("Martin Horák", "martin.horak"),
]
TEXT = """Dobrý den,

objednávku č. {order} jsem zaplatila předem kartou už {day}. listopadu, ale dodnes mi
nedorazila. Podle sledování zásilky měla být doručena v pondělí, na výdejním místě o ní ale
nic nevědí a na infolince jsem se nedovolala. Můžete prosím zjistit, kde balík je a kdy ho
mohu čekat? Pokud se ztratil, prosím o vrácení peněz na účet, ze kterého jsem platila, nebo
o nové odeslání zboží – dárek potřebuji nejpozději do pátku.

Fakturu a potvrzení o platbě posílám v příloze.

Děkuji a přeji hezký den
{name}
tel. +420 {phone}
"""
#: Random bytes behind a PDF header: base64 of this is ~18 KB, the message ~20 KB.
ATTACHMENT_BYTES = 13_900


@dataclass(frozen=True, slots=True)
class Email:
    message_id: str  # without <>, as Switchboard stores it
    sender: str
    raw: bytes


def emails(count: int, rng: random.Random, tag: str) -> list[Email]:
    """*count* distinct messages as a mail client sends them (CRLF, quoted-printable Czech
    text, base64 attachment), each with its own Message-ID and sender."""
    result = []
    for n in range(count):
        name, local = PEOPLE[n % len(PEOPLE)]
        sender = f"{local}.{n}@example.cz"
        message_id = f"{tag}-{n}-{rng.getrandbits(64):016x}@example.cz"
        order = rng.randrange(2_000_000, 3_000_000)
        message = EmailMessage()
        message["From"] = Address(name, addr_spec=sender)
        message["To"] = Address("E-shop podpora", addr_spec="podpora@eshop.example")
        message["Subject"] = f"Objednávka č. {order} stále nedorazila"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{message_id}>"
        text = TEXT.format(
            order=order,
            day=rng.randrange(1, 20),
            name=name,
            phone=" ".join(str(rng.randrange(100, 1000)) for _ in range(3)),
        )
        message.set_content(text, cte="quoted-printable")
        message.add_attachment(
            b"%PDF-1.7\n" + rng.randbytes(ATTACHMENT_BYTES),
            maintype="application",
            subtype="pdf",
            filename=f"faktura-{order}.pdf",
        )
        result.append(Email(message_id, sender, message.as_bytes(policy=email.policy.SMTP)))
    return result


def signed(messages: Sequence[Email]) -> list[PreparedRequest]:
    """Sign just before a round (signatures are valid 5 minutes), never while timing."""
    now = int(time.time())
    return [
        PreparedRequest(
            body=message.raw,
            headers={"Content-Type": "message/rfc822", HEADER: sign(SECRET, message.raw, now)},
        )
        for message in messages
    ]


def round_sizes(total: int, rounds: int) -> list[int]:
    base, extra = divmod(total, rounds)
    return [base + (1 if index < extra else 0) for index in range(rounds) if base or index < extra]


@dataclass(slots=True)
class Ingested:
    """What the database holds after ingestion."""

    message_ids: list[str]
    pending: int
    pending_interactions: int
    without_one_forward: int
    destinations: Counter[str]


def ingested(database: Path) -> Ingested:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT provider_id, destination, reason FROM interactions WHERE channel = 'email'"
        ).fetchall()
        pending, pending_interactions = connection.execute(
            "SELECT count(*), count(DISTINCT interaction_id) FROM outbox "
            "WHERE kind = 'email' AND status = 'pending'"
        ).fetchone()
        (without_one_forward,) = connection.execute(
            "SELECT count(*) FROM interactions AS i WHERE i.channel = 'email' AND "
            "(SELECT count(*) FROM outbox AS o WHERE o.interaction_id = i.id "
            "AND o.kind = 'email' AND o.status = 'pending') != 1"
        ).fetchone()
    return Ingested(
        message_ids=[str(row[0]) for row in rows],
        pending=int(pending),
        pending_interactions=int(pending_interactions),
        without_one_forward=int(without_one_forward),
        destinations=Counter(f"{row[1]} ({row[2]})" for row in rows),
    )


def outbox_statuses(database: Path) -> Counter[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT status, count(*) FROM outbox WHERE kind = 'email' GROUP BY status"
        ).fetchall()
    return Counter({str(status): int(count) for status, count in rows})


def delivery_events(log_path: Path) -> Counter[str]:
    text = log_path.read_text(errors="replace")
    return Counter(
        {
            event: text.count(f'"event": "{event}"')
            for event in ("outbox.delivered", "outbox.retry", "outbox.failed")
        }
    )


@dataclass(slots=True)
class Delivery:
    """One side of the delivery comparison, as the sink saw it."""

    label: str
    copies: Counter[str]
    #: first to last arrival at the sink, seconds
    window: float
    #: CPU of whoever sends (the service after it was ready; this process) per message sent
    #: meanwhile, and of the sink per message; NaN where unknown
    sender_cpu_ms: float
    sink_cpu_ms: float
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def received(self) -> int:
        return sum(self.copies.values())

    @property
    def rate(self) -> float:
        return self.received / self.window if self.window > 0 else 0.0


def per_message_ms(before: float | None, after: float | None, messages: int) -> float:
    if before is None or after is None or messages <= 0:
        return float("nan")
    return (after - before) * 1000.0 / messages


async def sink_state(
    session: aiohttp.ClientSession, base: str, *, copies: bool = False
) -> dict[str, Any]:
    async with session.get(base + "/received", params={"copies": "1"} if copies else {}) as rsp:
        rsp.raise_for_status()
        state: dict[str, Any] = await rsp.json()
    return state


def sink_delivery(
    label: str,
    state: Mapping[str, Any],
    *,
    sender_cpu_ms: float,
    sink_cpu_ms: float,
    errors: Counter[str] | None = None,
) -> Delivery:
    first, last = state["first"], state["last"]
    return Delivery(
        label=label,
        copies=Counter(state.get("copies", {})),
        window=float(last - first) if first is not None and last is not None else 0.0,
        sender_cpu_ms=sender_cpu_ms,
        sink_cpu_ms=sink_cpu_ms,
        errors=errors or Counter(),
    )


async def worker_delivery(
    env: Mapping[str, str],
    database: Path,
    log_path: Path,
    session: aiohttp.ClientSession,
    sink_base: str,
    sink_pid: int,
    expected: int,
) -> tuple[Delivery, float, int]:
    """Start the service with SMTP pointed at the sink and wait (bounded) until its outbox
    holds nothing pending. Returns the sink's view, the seconds from spawn to an empty outbox
    and how many messages arrived before the service answered /readyz."""
    port = free_port()
    sink_before = process_cpu_seconds(sink_pid)
    spawned = time.perf_counter()
    deadline = spawned + DELIVERY_SECONDS + 0.1 * expected
    async with server_process(
        "switchboard",
        port=port,
        env=env,
        log_path=log_path,
        ready_url=f"http://127.0.0.1:{port}/readyz",
    ) as process:
        # deliveries start with the service; its CPU is counted from readiness on, over the
        # messages that arrived after it (start-up is not delivery)
        server_before = process_cpu_seconds(process.pid)
        early = int((await sink_state(session, sink_base))["count"])
        # the outbox is in another process's database: polling it is the only signal
        while outbox_statuses(database)["pending"] and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        emptied = time.perf_counter() - spawned
        server_after = process_cpu_seconds(process.pid)
    state = await sink_state(session, sink_base, copies=True)
    delivery = sink_delivery(
        WORKER,
        state,
        sender_cpu_ms=per_message_ms(server_before, server_after, int(state["count"]) - early),
        sink_cpu_ms=per_message_ms(sink_before, process_cpu_seconds(sink_pid), state["count"]),
    )
    return delivery, emptied, early


async def direct_delivery(
    messages: Sequence[Email],
    session: aiohttp.ClientSession,
    sink_base: str,
    sink_pid: int,
    smtp_port: int,
) -> Delivery:
    """The same messages straight to the sink, as the worker sends: :data:`POOL_SIZE`
    connections, each reused for message after message (integrations/smtp.py), :data:`BATCH`
    messages at once, the next batch when the last one is done. The connections are opened
    before the clock starts and closed after it stops, as the worker's outlive a batch."""
    async with session.post(sink_base + "/reset") as rsp:
        rsp.raise_for_status()
    errors: Counter[str] = Counter()
    free: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    for _ in range(POOL_SIZE):
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=smtp_port, use_tls=False, start_tls=False, timeout=60
        )
        await client.connect()
        free.put_nowait(client)

    async def send(message: Email) -> None:
        client = await free.get()
        try:
            await client.sendmail(message.sender, [RECIPIENT], message.raw)
        finally:
            free.put_nowait(client)

    sink_before = process_cpu_seconds(sink_pid)
    client_before = time.process_time()
    for start in range(0, len(messages), BATCH):
        outcomes = await asyncio.gather(
            *(send(message) for message in messages[start : start + BATCH]),
            return_exceptions=True,
        )
        errors.update(type(o).__name__ for o in outcomes if isinstance(o, BaseException))
    client_after = time.process_time()
    sink_after = process_cpu_seconds(sink_pid)
    while not free.empty():
        client = free.get_nowait()
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    state = await sink_state(session, sink_base, copies=True)
    return sink_delivery(
        DIRECT,
        state,
        sender_cpu_ms=per_message_ms(client_before, client_after, len(messages)),
        sink_cpu_ms=per_message_ms(sink_before, sink_after, len(messages)),
        errors=errors,
    )


def exactly_once(delivery: Delivery, expected: set[str]) -> str | None:
    """None when the sink got every expected Message-ID once and nothing else, else why not."""
    missing = len(expected - delivery.copies.keys())
    unexpected = len(delivery.copies.keys() - expected)
    repeated = sum(1 for count in delivery.copies.values() if count > 1)
    if missing or unexpected or repeated:
        return (
            f"{delivery.label}: {len(expected)} messages expected at the sink, "
            f"{missing} missing, {unexpected} unexpected, {repeated} received more than once"
        )
    return None


def email_goals(sb: LoadResult, bare: LoadResult, worker: Delivery, direct: Delivery) -> list[Goal]:
    """Issue #14 goals 2 (email accept) and 3 (outbox delivery)."""
    accept = sb.rps / bare.rps if bare.rps else math.nan
    deliver = worker.rate / direct.rate if direct.rate else math.nan
    return [
        Goal(
            key="2 email accept",
            figure=f"{sb.rps:,.0f}/s = {accept:.2f}x",
            baseline=f"bare {bare.rps:,.0f}/s",
            target=f">= {ACCEPT_GOAL:.2f}x",
            met=accept >= ACCEPT_GOAL,
        ),
        Goal(
            key="3 outbox",
            figure=f"{worker.rate:,.0f}/s = {deliver:.2f}x",
            baseline=f"aiosmtplib direct {direct.rate:,.0f}/s",
            target=f">= {DELIVERY_GOAL:.2f}x",
            met=deliver >= DELIVERY_GOAL,
        ),
    ]


async def email_benchmark(options: LoadOptions) -> Section:
    sizes = round_sizes(options.emails, options.rounds)
    per_server = options.email_warmup + sum(sizes)
    rng = random.Random(20261123)
    sb_emails, bare_emails = emails(per_server, rng, "sb"), emails(per_server, rng, "bare")
    lengths = sorted(len(message.raw) for message in sb_emails)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"

        def switchboard_env(base: str) -> dict[str, str]:
            # no SWITCHBOARD_SMTP_*: forwards wait in the outbox
            return switchboard_environment(work, base, SWITCHBOARD_EMAIL_WEBHOOK_SECRET=SECRET)

        messages = {SWITCHBOARD: sb_emails, BARE: bare_emails}
        seen = await side_by_side(
            work,
            options,
            path=EMAIL_PATH,
            switchboard_env=switchboard_env,
            # signed round by round: a signature is only good for 5 minutes
            prepare=lambda side, url, first, count: signed(messages[side][first : first + count]),
            expect=EXPECTED,
            warmup=options.email_warmup,
            sizes=sizes,
        )
        rounds, errors, ok_total = seen.rounds, seen.errors, seen.ok
        sb_log = work / "switchboard.log"

        stored = ingested(database)
        sent_ids = {message.message_id for message in sb_emails}
        stored_ids = set(stored.message_ids)
        failures = [
            f"{name}: {sum(errors[name].values())} failed requests {dict(errors[name])}"
            for name in (SWITCHBOARD, BARE)
            if errors[name]
        ]
        accepted = ok_total[SWITCHBOARD]
        if not (
            len(stored.message_ids)
            == len(stored_ids)
            == stored.pending
            == stored.pending_interactions
            == accepted
            and stored.without_one_forward == 0
            and stored_ids <= sent_ids
        ):
            failures.append(
                f"{accepted} emails accepted, but the database holds "
                f"{len(stored.message_ids)} email interactions ({len(stored_ids)} distinct "
                f"Message-IDs, {len(stored_ids - sent_ids)} never sent), {stored.pending} "
                f"pending forwards for {stored.pending_interactions} interactions, and "
                f"{stored.without_one_forward} interactions without exactly one forward"
            )

        # -- outbox delivery ---------------------------------------------------------------
        smtp_port, sink_port = free_port(), free_port()
        sink_base = f"http://127.0.0.1:{sink_port}"
        delivery_log = work / "switchboard-delivery.log"
        smtp_env = {
            **switchboard_env(f"http://127.0.0.1:{free_port()}"),
            "SWITCHBOARD_SMTP_HOST": "127.0.0.1",
            "SWITCHBOARD_SMTP_PORT": str(smtp_port),
            "SWITCHBOARD_SMTP_SECURITY": "none",
        }
        to_deliver = [message for message in sb_emails if message.message_id in stored_ids]
        async with (
            smtp_sink_process(work, port=sink_port, smtp_port=smtp_port) as sink_process,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        ):
            worker, emptied, early = await worker_delivery(
                smtp_env,
                database,
                delivery_log,
                session,
                sink_base,
                sink_process.pid,
                len(to_deliver),
            )
            direct = await direct_delivery(
                to_deliver, session, sink_base, sink_process.pid, smtp_port
            )
        statuses = outbox_statuses(database)
        events = delivery_events(delivery_log)
        if statuses["pending"] or statuses["failed"] or statuses["delivered"] != len(to_deliver):
            failures.append(
                f"outbox after delivery: {dict(statuses)} for {len(to_deliver)} forwards "
                f"(bound {DELIVERY_SECONDS + 0.1 * len(to_deliver):.0f} s)"
            )
        for delivery in (worker, direct):
            problem = exactly_once(delivery, stored_ids)
            if problem:
                failures.append(problem)
        if direct.errors:
            failures.append(f"{DIRECT}: {dict(direct.errors)}")

        sb, bare = median_round(rounds[SWITCHBOARD]), median_round(rounds[BARE])
        delivery_table = markdown_table(
            ["sender", "messages", "deliveries/s", "sender CPU ms/msg", "sink CPU ms/msg"],
            [
                [
                    delivery.label,
                    f"{delivery.received}",
                    f"{delivery.rate:,.0f}",
                    f"{delivery.sender_cpu_ms:.2f}",
                    f"{delivery.sink_cpu_ms:.2f}",
                ]
                for delivery in (worker, direct)
            ]
            + [
                [
                    "ratio worker/direct",
                    "",
                    ratio(worker.rate, direct.rate),
                    ratio(worker.sender_cpu_ms, direct.sender_cpu_ms),
                    ratio(worker.sink_cpu_ms, direct.sink_cpu_ms),
                ]
            ],
        )
        destinations = ", ".join(f"{n} {key}" for key, n in stored.destinations.most_common())
        notes = [
            f"ingestion: {len(sizes)} alternating rounds of {'/'.join(map(str, sizes))} emails "
            f"per server after {options.email_warmup} warm-up, concurrency "
            f"{options.concurrency}; messages {lengths[0] / 1024:.1f}-{lengths[-1] / 1024:.1f} "
            f"KB (mean {sum(lengths) / len(lengths) / 1024:.1f}); median round by rate "
            f"(switchboard {sb.label}, bare {bare.label}).",
            "emails/s per round: "
            + "; ".join(
                f"{name} " + ", ".join(f"{result.rps:,.0f}" for result in rounds[name])
                for name in (SWITCHBOARD, BARE)
            ),
            f"load generator busy: switchboard {busy(sb)}, bare {busy(bare)}.",
            f"database after ingestion: {len(stored.message_ids)} email interactions "
            f"({len(stored_ids)} distinct Message-IDs, all sent by this run) and "
            f"{stored.pending} pending forwards, one per interaction, for {accepted} accepted "
            f"emails (warm-up included); routed to {destinations}.",
            "",
            "outbox delivery (rates from the first to the last arrival at the sink):",
            "",
            delivery_table,
            "",
            f"worker: `switchboard serve` on that database with SMTP -> aiosmtpd sink "
            f"(security none); outbox empty {emptied:.1f} s after spawn (start-up included), "
            f"{early} delivered before /readyz answered; outbox {dict(statuses)}; log "
            f"{events['outbox.delivered']} outbox.delivered, {events['outbox.retry']} "
            f"outbox.retry, {events['outbox.failed']} outbox.failed.",
            f"sink: worker {worker.received} messages, {len(worker.copies)} distinct "
            f"Message-IDs; direct {direct.received} messages, {len(direct.copies)} distinct "
            f"Message-IDs ({len(stored_ids)} expected on each side, once each).",
        ]
        if failures:
            notes.append(f"last lines of the Switchboard log:\n{log_tail(sb_log, 5)}")
            notes.append(f"last lines of the delivery log:\n{log_tail(delivery_log, 5)}")
        return Section(
            title="email: signed POST /webhooks/email/mime (~20 KB) vs a bare handler reading "
            "the body; outbox -> SMTP vs aiosmtplib direct",
            headers=comparison_headers("emails/s", "email"),
            rows=comparison_rows(sb, bare),
            notes=notes,
            failures=failures,
            goals=email_goals(sb, bare, worker, direct),
        )
