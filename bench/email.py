"""Benchmark ``email``: signed raw emails (about 20 KB each) accepted by the real service,
against a bare aiohttp handler that only reads the same body.

Switchboard runs as ``switchboard serve`` on a SQLite file; SMTP is not configured, so each
accepted email is one durable transaction holding the interaction and its outbox row (the
message itself), and nothing is delivered during the run. Afterwards the database must hold
exactly one interaction and one pending forward per accepted request.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from aiosmtpd.controller import Controller

from bench.harness import (
    LoadOptions,
    LoadResult,
    PreparedRequest,
    Section,
    drive,
    free_port,
    log_tail,
    median_round,
    server_process,
)
from bench.servers import EMAIL_PATH
from bench.webhook import BARE, SWITCHBOARD, busy, clean_environment, comparison_rows, ratio
from integrations.signing import HEADER, sign

SECRET = "bench-email-webhook-secret"
CUSTOMER_KEY_SECRET = "bench-customer-key-secret-0123456789"
EXPECTED = b"interaction_id"
_BODY = (
    "Dobrý den,\n\nobjednávka č. {n} mi stále nedorazila, i když podle sledování zásilky "
    "měla být doručena už v pondělí. Prosím o informaci, kdy ji mohu čekat, případně o "
    "vrácení peněz.\n\nS pozdravem\nJana Nováková\n"
)


def emails(count: int, rng: random.Random) -> list[bytes]:
    """*count* distinct messages of about 20 KB: Czech text and a small PDF attachment."""
    messages = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = f"Zákazník {n} <zakaznik{n}@example.cz>"
        message["To"] = "podpora@eshop.example"
        message["Subject"] = f"Objednávka {n} nedorazila"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<bench-{n}-{rng.getrandbits(64):016x}@example.cz>"
        message.set_content(_BODY.format(n=n) * 4)
        message.add_attachment(
            rng.randbytes(14_000), maintype="application", subtype="pdf", filename="faktura.pdf"
        )
        messages.append(message.as_bytes())
    return messages


def signed(messages: list[bytes]) -> list[PreparedRequest]:
    now = int(time.time())
    return [
        PreparedRequest(
            body=raw,
            headers={"Content-Type": "message/rfc822", HEADER: sign(SECRET, raw, now)},
        )
        for raw in messages
    ]


class Sink:
    """aiosmtpd handler counting messages by Message-ID (thread-safe enough: one thread)."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message_id = message_from_bytes(bytes(envelope.content))["Message-ID"] or "?"
        self.copies[message_id] += 1
        return "250 OK"


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: int
    max_copies: int
    worker_seconds: float
    worker_rate: float
    direct_count: int
    direct_rate: float


async def outbox_delivery(
    database: Path,
    env: dict[str, str],
    work: Path,
    messages: list[bytes],
    options: LoadOptions,
) -> Delivery:
    """Start the service again with SMTP pointed at a local sink and time until its outbox
    is empty; then send the same number of messages straight to the sink for comparison."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        port = free_port()
        smtp_env = {
            **env,
            "SWITCHBOARD_SMTP_HOST": "127.0.0.1",
            "SWITCHBOARD_SMTP_PORT": str(controller.port),
            "SWITCHBOARD_SMTP_SECURITY": "none",
        }
        started = time.perf_counter()
        async with server_process(
            "switchboard",
            port=port,
            env=smtp_env,
            log_path=work / "switchboard-smtp.log",
            ready_url=f"http://127.0.0.1:{port}/readyz",
        ):
            deadline = started + 180
            # the outbox lives in another process's database: polling is the only signal
            while stored(database)[1] and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            worker_seconds = time.perf_counter() - started
        delivered = sum(sink.copies.values())
        max_copies = max(sink.copies.values(), default=0)

        direct = Sink()
        controller.stop()
        controller = Controller(direct, hostname="127.0.0.1", port=free_port())
        controller.start()
        queue = iter(messages)

        async def sender() -> None:
            for raw in queue:
                await aiosmtplib.send(
                    raw,
                    sender="bench@example.cz",
                    recipients=["produkty@eshop.example"],
                    hostname="127.0.0.1",
                    port=controller.port,
                    start_tls=False,
                )

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(20)))
        direct_seconds = time.perf_counter() - started
    finally:
        controller.stop()
    return Delivery(
        delivered=delivered,
        max_copies=max_copies,
        worker_seconds=worker_seconds,
        worker_rate=delivered / worker_seconds if worker_seconds else 0.0,
        direct_count=len(messages),
        direct_rate=len(messages) / direct_seconds if direct_seconds else 0.0,
    )


def stored(database: Path) -> tuple[int, int]:
    """(interactions, pending forwards) in the service's database."""
    with sqlite3.connect(database) as connection:
        (interactions,) = connection.execute("SELECT count(*) FROM interactions").fetchone()
        (pending,) = connection.execute(
            "SELECT count(*) FROM outbox WHERE status = 'pending'"
        ).fetchone()
    return int(interactions), int(pending)


#: Emails are 20 KB and each is delivered afterwards: fewer than the voice benchmark's
#: requests keep `make bench` within a few minutes.
MAX_REQUESTS, MAX_WARMUP = 1000, 100


async def email_ingestion(options: LoadOptions) -> Section:
    options = replace(
        options,
        requests=min(options.requests, MAX_REQUESTS),
        warmup=min(options.warmup, MAX_WARMUP),
    )
    per_server = options.warmup + options.rounds * options.requests
    rng = random.Random(20261123)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"
        sb_port, bare_port = free_port(), free_port()
        sb_url = f"http://127.0.0.1:{sb_port}{EMAIL_PATH}"
        bare_url = f"http://127.0.0.1:{bare_port}{EMAIL_PATH}"
        # signatures are valid for 5 minutes: sign just before the run, never during it
        sb_requests = signed(emails(per_server, rng))
        bare_requests = signed(emails(per_server, rng))
        size = sum(len(r.body) for r in sb_requests) / len(sb_requests)
        sb_env = {
            **clean_environment(),
            "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "SWITCHBOARD_VAR_DIR": str(work / "var"),
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_CUSTOMER_KEY_SECRET": CUSTOMER_KEY_SECRET,
            "SWITCHBOARD_EMAIL_WEBHOOK_SECRET": SECRET,
        }
        sb_log, bare_log = work / "switchboard.log", work / "bare.log"
        rounds: dict[str, list[LoadResult]] = {SWITCHBOARD: [], BARE: []}
        errors: dict[str, Counter[str]] = {SWITCHBOARD: Counter(), BARE: Counter()}
        ok_total: Counter[str] = Counter()
        async with (
            server_process(
                "switchboard",
                port=sb_port,
                env=sb_env,
                log_path=sb_log,
                ready_url=f"http://127.0.0.1:{sb_port}/readyz",
            ) as sb_process,
            server_process(
                "bare",
                port=bare_port,
                env=clean_environment(),
                log_path=bare_log,
                ready_url=f"http://127.0.0.1:{bare_port}/readyz",
            ) as bare_process,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=options.concurrency),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as session,
        ):
            targets = {
                SWITCHBOARD: (sb_url, sb_requests, sb_process.pid),
                BARE: (bare_url, bare_requests, bare_process.pid),
            }

            async def load(name: str, first: int, count: int, label: str) -> LoadResult:
                url, prepared, pid = targets[name]
                result = await drive(
                    session,
                    url,
                    prepared[first : first + count],
                    concurrency=options.concurrency,
                    label=label,
                    expect=EXPECTED,
                    server_pid=pid,
                )
                errors[name] += result.errors
                ok_total[name] += result.ok
                return result

            for name in (SWITCHBOARD, BARE):
                await load(name, 0, options.warmup, "warm-up")
            for index in range(options.rounds):
                order = (SWITCHBOARD, BARE) if index % 2 == 0 else (BARE, SWITCHBOARD)
                first = options.warmup + index * options.requests
                for name in order:
                    rounds[name].append(
                        await load(name, first, options.requests, f"round {index + 1}")
                    )
        interactions, pending = stored(database)
        delivery = await outbox_delivery(
            database, sb_env, work, [r.body for r in sb_requests[:pending]], options
        )
        sb, bare = median_round(rounds[SWITCHBOARD]), median_round(rounds[BARE])
        rows = comparison_rows(sb, bare)
        failures = [
            f"{name}: {sum(errors[name].values())} failed requests {dict(errors[name])}"
            for name in (SWITCHBOARD, BARE)
            if errors[name]
        ]
        if not interactions == pending == ok_total[SWITCHBOARD]:
            failures.append(
                f"{ok_total[SWITCHBOARD]} emails accepted, but the database holds "
                f"{interactions} interactions and {pending} pending forwards"
            )
        notes = [
            f"{options.rounds} alternating rounds of {options.requests} emails per server "
            f"after {options.warmup} warm-up, concurrency {options.concurrency}, "
            f"{size / 1024:.1f} KB per message; median round by rate.",
            f"load generator busy: switchboard {busy(sb)}, bare {busy(bare)}.",
            f"database: {interactions} interactions and {pending} pending forwards for "
            f"{ok_total[SWITCHBOARD]} accepted emails (warm-up included).",
        ]
        if failures:
            notes.append(f"last lines of the Switchboard log:\n{log_tail(sb_log, 5)}")
        rows.append(["", "", "", "", ""])
        rows.append(["outbox -> SMTP sink", f"{delivery.worker_rate:,.0f}", "", "", ""])
        rows.append(["aiosmtplib -> same sink", f"{delivery.direct_rate:,.0f}", "", "", ""])
        rows.append(
            ["ratio outbox/direct", ratio(delivery.worker_rate, delivery.direct_rate), "", "", ""]
        )
        notes.append(
            f"outbox: {delivery.delivered} forwards delivered by the service's worker in "
            f"{delivery.worker_seconds:.1f} s, each message received {delivery.max_copies}x at "
            f"most; the direct baseline sent {delivery.direct_count} messages with the "
            "worker's concurrency (20) to the same aiosmtpd sink."
        )
        if delivery.delivered != pending or delivery.max_copies != 1:
            failures.append(
                f"outbox: {delivery.delivered} of {pending} forwards arrived "
                f"(max copies {delivery.max_copies})"
            )
        return Section(
            title="email: signed POST /webhooks/email/mime (20 KB) vs a bare handler reading "
            "the body; outbox deliveries vs direct SMTP sends",
            headers=["server", "emails/s", "p50 ms", "p99 ms", "server CPU ms/req"],
            rows=rows,
            notes=notes,
            failures=failures,
        )
