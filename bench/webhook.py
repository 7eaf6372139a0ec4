"""Benchmark ``voice-route``: a signed Twilio Gather result through the real service, against a
bare aiohttp handler that only parses the same form.

Switchboard runs as ``switchboard serve`` on a SQLite file (WAL, ``synchronous=FULL``) in a
temporary directory, with JSON logs going to a file there; every request carries a new
CallSid, so each one verifies the signature, decides, and durably inserts an interaction and
its stored reply. The ratio against the bare handler is what Switchboard adds to a webhook.
"""

from __future__ import annotations

import math
import random
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.harness import (
    BARE,
    PACED_CONNECTIONS,
    SWITCHBOARD,
    Goal,
    LoadOptions,
    LoadResult,
    PreparedRequest,
    Section,
    SideBySide,
    log_tail,
    median_round,
    side_by_side,
    switchboard_environment,
)
from bench.servers import ROUTE_PATH

TWILIO_TOKEN = "bench-twilio-auth-token"
#: Both servers answer a digit with a <Dial>; a body without it is an error.
EXPECTED = b"<Dial"
#: Issue #14 goal 1: throughput against the bare handler, and p99 at half that load.
THROUGHPUT_GOAL = 0.40
P99_GOAL_MS = 10.0
#: The paced run's rate, as a share of Switchboard's own median round rate.
PACED_SHARE = 0.5
#: Further open-loop rates for Switchboard alone: p99 against how busy the process is.
CURVE_SHARES = (0.25, 0.35)


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
    paced_requests = paced_count(options)
    per_server = options.warmup + options.rounds * options.requests + paced_requests
    curve_requests = paced_requests * len(CURVE_SHARES)
    rng = random.Random(20261123)
    forms = {
        SWITCHBOARD: gather_forms(per_server + curve_requests, rng),
        BARE: gather_forms(per_server, rng),
    }
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"

        def switchboard_env(base: str) -> dict[str, str]:
            return switchboard_environment(work, base, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)

        def prepare(side: str, url: str, first: int, count: int) -> list[PreparedRequest]:
            return signed(url, forms[side][first : first + count], TWILIO_TOKEN)

        seen = await side_by_side(
            work,
            options,
            path=ROUTE_PATH,
            switchboard_env=switchboard_env,
            prepare=prepare,
            expect=EXPECTED,
            warmup=options.warmup,
            sizes=[options.requests] * options.rounds,
            paced_requests=paced_requests,
            paced_share=PACED_SHARE,
            curve_shares=CURVE_SHARES,
        )
        sb_log = work / "switchboard.log"
        interactions = stored_interactions(database)
        events = logged_events(sb_log)
        section = report(options, seen, interactions, events)
        if section.failures:
            section.notes.append(f"last lines of the Switchboard log:\n{log_tail(sb_log, 5)}")
        return section


def ratio(numerator: float, denominator: float) -> str:
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def busy(result: LoadResult) -> str:
    return f"{result.client_cpu_seconds / result.seconds:.0%}" if result.seconds else "n/a"


def comparison_headers(rate: str, unit: str) -> list[str]:
    """The columns of :func:`comparison_rows`, *rate* and *unit* named for what is sent."""
    return ["server", rate, "p50 ms", "p99 ms", f"server CPU ms/{unit}", "server busy"]


def comparison_rows(sb: LoadResult, bare: LoadResult) -> list[list[str]]:
    """Rate, p50, p99 and server CPU per request of both servers, and their ratios."""
    rows = [
        [
            name,
            f"{result.rps:,.0f}",
            f"{result.percentile_ms(50):.2f}",
            f"{result.percentile_ms(99):.2f}",
            f"{result.server_cpu_ms:.2f}",
            server_busy(result),
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
            "",
        ]
    )
    return rows


def paced_count(options: LoadOptions) -> int:
    """Requests of the open-loop run: half a round, enough for a p99 of a few seconds."""
    return max(200, options.requests // 2)


def goals(sb: LoadResult, bare: LoadResult, seen: SideBySide) -> list[Goal]:
    throughput = sb.rps / bare.rps if bare.rps else math.nan
    found = [
        Goal(
            key="1 throughput",
            figure=f"{sb.rps:,.0f} rps = {throughput:.2f}x",
            baseline=f"bare {bare.rps:,.0f} rps",
            target=f">= {THROUGHPUT_GOAL:.2f}x",
            met=throughput >= THROUGHPUT_GOAL,
        )
    ]
    paced_sb, paced_bare = seen.paced.get(SWITCHBOARD), seen.paced.get(BARE)
    if paced_sb is not None and paced_bare is not None:
        p99 = paced_sb.percentile_ms(99)
        found.append(
            Goal(
                key="1 p99",
                figure=f"p99 {p99:.1f} ms at {seen.paced_rate:,.0f}/s",
                baseline=f"bare p99 {paced_bare.percentile_ms(99):.1f} ms at the same rate",
                target=f"<= {P99_GOAL_MS:.0f} ms at half load",
                met=p99 <= P99_GOAL_MS,
            )
        )
    return found


def paced_rows(seen: SideBySide) -> list[list[str]]:
    """The open-loop runs: both servers at the goal's rate, then Switchboard's curve."""
    runs = [(f"{name}, paced", result) for name, result in seen.paced.items()]
    runs += [(f"{SWITCHBOARD}, paced at {share:.0%}", result) for share, result in seen.curve]
    return [
        [
            name,
            f"{result.rps:,.0f}",
            f"{result.percentile_ms(50):.2f}",
            f"{result.percentile_ms(99):.2f}",
            f"{result.server_cpu_ms:.2f}",
            server_busy(result),
        ]
        for name, result in runs
    ]


def server_busy(result: LoadResult) -> str:
    """The server's CPU time over the wall time: how close one process is to its limit."""
    if math.isnan(result.server_cpu_ms):
        return "n/a"
    return f"{result.server_cpu_ms * result.rps / 1000:.0%}"


def report(
    options: LoadOptions, seen: SideBySide, interactions: int, events: Counter[str]
) -> Section:
    rounds, errors, ok_total = seen.rounds, seen.errors, seen.ok
    sb, bare = median_round(rounds[SWITCHBOARD]), median_round(rounds[BARE])
    rows = comparison_rows(sb, bare) + paced_rows(seen)
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
        f"paced: {paced_count(options)} requests per server in an open loop at "
        f"{seen.paced_rate:,.0f}/s ({PACED_SHARE:.0%} of Switchboard's median round rate; "
        f"half the goal's load would be {bare.rps * THROUGHPUT_GOAL * PACED_SHARE:,.0f}/s), "
        f"latency from each request's due time; up to {PACED_CONNECTIONS} connections. "
        "Then Switchboard alone at "
        + ", ".join(f"{share:.0%}" for share in CURVE_SHARES)
        + " of its median round rate: its p99 against how busy the process is (server CPU "
        "/ wall time).",
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
        headers=comparison_headers("rps", "req"),
        rows=rows,
        notes=notes,
        failures=failures,
        goals=goals(sb, bare, seen),
    )
