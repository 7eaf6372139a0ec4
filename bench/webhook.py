"""Benchmark ``voice-route``: a signed Twilio Gather result through the real service, against a
bare aiohttp handler that only parses the same form.

Switchboard runs as ``switchboard serve`` on a SQLite file (WAL, ``synchronous=FULL``) in a
temporary directory, with JSON logs going to a file there; every request carries a new
CallSid, so each one verifies the signature, decides, and durably inserts an interaction and
its stored reply. The ratio against the bare handler is what Switchboard adds to a webhook.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

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
from bench.servers import ROUTE_PATH

TWILIO_TOKEN = "bench-twilio-auth-token"
CUSTOMER_KEY_SECRET = "bench-customer-key-secret-0123456789"
#: Both servers answer a digit with a <Dial>; a body without it is an error.
EXPECTED = b"<Dial"
SWITCHBOARD, BARE = "switchboard", "bare aiohttp"


def gather_forms(count: int, rng: random.Random) -> list[dict[str, str]]:
    """*count* Gather results as Twilio posts them: digit 1, a random Czech caller, each with
    its own CallSid (so every request is a new contact)."""
    account = f"AC{rng.getrandbits(128):032x}"
    return [
        {
            "AccountSid": account,
            "ApiVersion": "2010-04-01",
            "CallSid": f"CA{index:08x}{rng.getrandbits(96):024x}",
            "CallStatus": "in-progress",
            "Digits": "1",
            "Direction": "inbound",
            "From": f"+420{rng.randrange(600_000_000, 800_000_000)}",
            "To": "+420222000111",
        }
        for index in range(count)
    ]


def signed(url: str, forms: list[dict[str, str]], token: str) -> list[PreparedRequest]:
    """Encode and sign every form for *url* before timing (signing is the client's cost)."""
    validator = RequestValidator(token)
    return [
        PreparedRequest(
            body=urlencode(form).encode("ascii"),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": str(validator.compute_signature(url, form)),
            },
        )
        for form in forms
    ]


def clean_environment() -> dict[str, str]:
    """This process's environment without any Switchboard or Twilio setting of the caller's."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SWITCHBOARD_", "TWILIO_"))
    }


def stored_interactions(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM interactions").fetchone()
    return int(count)


def logged_events(log_path: Path) -> Counter[str]:
    """How many log lines name each event of interest (JSON logs: ``"event": "..."``)."""
    text = log_path.read_text(errors="replace")
    return Counter(
        {
            "contact.routed": text.count('"event": "contact.routed"'),
            "contact.unrecorded": text.count('"event": "contact.unrecorded"'),
            "error lines": text.count('"level": "error"'),
        }
    )


async def voice_route(options: LoadOptions) -> Section:
    per_server = options.warmup + options.rounds * options.requests
    rng = random.Random(20261123)
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"
        sb_port, bare_port = free_port(), free_port()
        sb_base, bare_base = f"http://127.0.0.1:{sb_port}", f"http://127.0.0.1:{bare_port}"
        sb_url, bare_url = sb_base + ROUTE_PATH, bare_base + ROUTE_PATH
        sb_requests = signed(sb_url, gather_forms(per_server, rng), TWILIO_TOKEN)
        bare_requests = signed(bare_url, gather_forms(per_server, rng), TWILIO_TOKEN)

        sb_env = {
            **clean_environment(),
            "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "SWITCHBOARD_VAR_DIR": str(work / "var"),
            "SWITCHBOARD_PUBLIC_URL": sb_base,
            "SWITCHBOARD_LOG_FORMAT": "json",
            "SWITCHBOARD_CUSTOMER_KEY_SECRET": CUSTOMER_KEY_SECRET,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
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
                ready_url=sb_base + "/readyz",
            ) as sb_process,
            server_process(
                "bare",
                port=bare_port,
                env=clean_environment(),
                log_path=bare_log,
                ready_url=bare_base + "/readyz",
            ) as bare_process,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=options.concurrency),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as sb_session,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=options.concurrency),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as bare_session,
        ):
            targets = {
                SWITCHBOARD: (sb_session, sb_url, sb_requests, sb_process.pid),
                BARE: (bare_session, bare_url, bare_requests, bare_process.pid),
            }

            async def load(name: str, first: int, count: int, label: str) -> LoadResult:
                session, url, prepared, pid = targets[name]
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
                # alternate which side goes first, so drift within a round hits both alike
                order = (SWITCHBOARD, BARE) if index % 2 == 0 else (BARE, SWITCHBOARD)
                first = options.warmup + index * options.requests
                for name in order:
                    rounds[name].append(
                        await load(name, first, options.requests, f"round {index + 1}")
                    )

        interactions = stored_interactions(database)
        events = logged_events(sb_log)
        section = report(options, rounds, errors, ok_total, interactions, events)
        if section.failures:
            section.notes.append(f"last lines of the Switchboard log:\n{log_tail(sb_log, 5)}")
        return section


def ratio(numerator: float, denominator: float) -> str:
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def busy(result: LoadResult) -> str:
    return f"{result.client_cpu_seconds / result.seconds:.0%}" if result.seconds else "n/a"


def comparison_rows(sb: LoadResult, bare: LoadResult) -> list[list[str]]:
    """Rate, p50, p99 and server CPU per request of both servers, and their ratios."""
    rows = [
        [
            name,
            f"{result.rps:,.0f}",
            f"{result.percentile_ms(50):.2f}",
            f"{result.percentile_ms(99):.2f}",
            f"{result.server_cpu_ms:.2f}",
        ]
        for name, result in ((SWITCHBOARD, sb), (BARE, bare))
    ]
    rows.append(
        [
            "ratio switchboard/bare",
            ratio(sb.rps, bare.rps),
            ratio(sb.percentile_ms(50), bare.percentile_ms(50)),
            ratio(sb.percentile_ms(99), bare.percentile_ms(99)),
            ratio(sb.server_cpu_ms, bare.server_cpu_ms),
        ]
    )
    return rows


def report(
    options: LoadOptions,
    rounds: Mapping[str, list[LoadResult]],
    errors: Mapping[str, Counter[str]],
    ok_total: Mapping[str, int],
    interactions: int,
    events: Counter[str],
) -> Section:
    sb, bare = median_round(rounds[SWITCHBOARD]), median_round(rounds[BARE])
    rows = comparison_rows(sb, bare)
    notes = [
        f"{options.rounds} alternating rounds of {options.requests} requests per server after "
        f"{options.warmup} warm-up, concurrency {options.concurrency}; median round by rps "
        f"(switchboard {sb.label}, bare {bare.label}).",
        "rps per round: "
        + "; ".join(
            f"{name} " + ", ".join(f"{result.rps:,.0f}" for result in rounds[name])
            for name in (SWITCHBOARD, BARE)
        ),
        "load generator busy (its CPU / wall time; near 100 % it, not the server, is the "
        f"limit): switchboard {busy(sb)}, bare {busy(bare)}.",
        f"database: {interactions} interactions for {ok_total[SWITCHBOARD]} successful "
        f"Switchboard requests (warm-up included); log: {events['contact.routed']} "
        f"contact.routed, {events['contact.unrecorded']} contact.unrecorded, "
        f"{events['error lines']} error lines.",
        "errors: "
        + "; ".join(
            f"{name} {sum(errors[name].values())}"
            + (f" ({dict(errors[name])})" if errors[name] else "")
            for name in (SWITCHBOARD, BARE)
        ),
    ]
    failures = [
        f"{name}: {sum(errors[name].values())} failed requests {dict(errors[name])}"
        for name in (SWITCHBOARD, BARE)
        if errors[name]
    ]
    if interactions != ok_total[SWITCHBOARD]:
        failures.append(
            f"the database holds {interactions} interactions, but {ok_total[SWITCHBOARD]} "
            "requests succeeded"
        )
    if events["contact.unrecorded"]:
        failures.append(f"{events['contact.unrecorded']} calls were answered but not recorded")
    return Section(
        title="voice-route: signed POST /webhooks/twilio/voice/route vs a bare aiohttp handler",
        headers=["server", "rps", "p50 ms", "p99 ms", "server CPU ms/req"],
        rows=rows,
        notes=notes,
        failures=failures,
    )
