"""Benchmark ``sync-commit``: what synchronous replication costs a contact on PostgreSQL.

A primary and a streaming standby (``tests/pg_server.py``, with fsync, full_page_writes and
synchronous_commit on, as in production), one ``switchboard serve`` on the multi-host URL
of the two, and signed Twilio Gathers to ``/route`` (one transaction each: the interaction
and its stored reply). Rounds alternate between the standby **synchronous**
(``synchronous_standby_names`` naming it: a commit returns once the standby has flushed it,
what "every acknowledged contact is on the new primary" needs) and **asynchronous** (empty:
the standby streams behind), switched by ``ALTER SYSTEM`` and a reload of the same server
under the same service process, so the wait for the standby is the only difference. Beside
the service, the commit latency of one connection alone (asyncpg, ``INSERT`` + ``COMMIT``
one after another). Reports calls/s, p50/p99 and the ratios synchronous / asynchronous.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

from bench.harness import (
    LoadOptions,
    LoadResult,
    PreparedRequest,
    Section,
    command_process,
    drive,
    free_port,
    log_tail,
    median_round,
    percentile,
    switchboard_environment,
)
from bench.servers import ROUTE_PATH
from bench.webhook import EXPECTED, TWILIO_TOKEN, gather_forms, logged_events, ratio, signed
from tests.pg_server import PostgresServer, PostgresUnavailable

SYNC, ASYNC = "synchronous standby", "asynchronous standby"
#: production's durability: the test cluster's defaults turn all three off
DURABLE = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}
#: sequential commits of one connection per mode and round
COMMITS = 300
DATABASE = "bench"


async def sync_commit(options: LoadOptions) -> Section:
    title = "sync-commit: a contact's commit with the standby synchronous vs asynchronous"
    try:
        primary = PostgresServer.start(DATABASE, settings=DURABLE)
    except PostgresUnavailable as exc:
        return Section(title, ["mode"], [], notes=[f"not run: {exc}"])
    try:
        standby = primary.start_standby("standby")
        try:
            return await measure(options, primary, standby, title)
        finally:
            standby.stop()
    finally:
        primary.stop()


async def measure(
    options: LoadOptions, primary: PostgresServer, standby: PostgresServer, title: str
) -> Section:
    hosts = f"{primary.host}:{primary.port},{standby.host}:{standby.port}"
    url = f"postgresql+asyncpg://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write"
    per_mode = options.warmup + options.rounds * options.requests
    forms = gather_forms(2 * per_mode, random.Random(20261217))
    calls: dict[str, list[LoadResult]] = {SYNC: [], ASYNC: []}
    commits: dict[str, list[float]] = {SYNC: [], ASYNC: []}

    def switch(mode: str) -> None:
        if mode == SYNC:
            primary.make_synchronous(standby)
        else:
            primary.make_asynchronous(standby)

    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = switchboard_environment(
            work,
            base,
            SWITCHBOARD_DATABASE_URL=url,
            SWITCHBOARD_PORT=str(port),
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        )
        log_path = work / "switchboard.log"
        serve = [str(Path(sys.executable).with_name("switchboard")), "serve"]
        async with (
            command_process(serve, env=env, log_path=log_path, ready_url=f"{base}/readyz"),
            aiohttp.ClientSession() as session,
        ):
            sent = 0

            def requests(count: int) -> list[PreparedRequest]:
                nonlocal sent
                batch = signed(base + ROUTE_PATH, forms[sent : sent + count], TWILIO_TOKEN)
                sent += count
                return batch

            for mode in (SYNC, ASYNC):  # warm-up, both ways
                switch(mode)
                await drive(
                    session,
                    base + ROUTE_PATH,
                    requests(options.warmup),
                    concurrency=options.concurrency,
                    label=f"warm-up {mode}",
                    expect=EXPECTED,
                )
            for number in range(options.rounds):
                order = [SYNC, ASYNC] if number % 2 == 0 else [ASYNC, SYNC]
                for mode in order:
                    switch(mode)
                    calls[mode].append(
                        await drive(
                            session,
                            base + ROUTE_PATH,
                            requests(options.requests),
                            concurrency=options.concurrency,
                            label=f"round {number + 1}",
                            expect=EXPECTED,
                        )
                    )
                    commits[mode] += await commit_latencies(primary)
        events = logged_events(log_path)
        stored = int(primary.psql("SELECT count(*) FROM interactions", DATABASE).strip())
        section = report(options, calls, commits, title)
        answered = sum(result.ok for results in calls.values() for result in results)
        errors = sum(result.error_count for results in calls.values() for result in results)
        if errors:
            section.failures.append(f"{errors} calls failed")
        if stored != 2 * options.warmup + answered:
            section.failures.append(f"{stored} interactions stored for {answered} timed calls")
        if events["contact.unrecorded"]:
            section.failures.append(f"{events['contact.unrecorded']} calls logged unrecorded")
        if section.failures:
            section.notes.append(f"last lines of the Switchboard log:\n{log_tail(log_path, 5)}")
        return section


async def commit_latencies(primary: PostgresServer) -> list[float]:
    """COMMITS sequential one-row transactions on one connection, each timed (seconds)."""
    connection = await asyncpg.connect(
        host=primary.host, port=primary.port, user=primary.user, database=DATABASE
    )
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS bench_commits (n integer)")
        latencies = []
        for n in range(COMMITS):
            started = time.perf_counter()
            await connection.execute(f"INSERT INTO bench_commits VALUES ({n})")  # autocommit
            latencies.append(time.perf_counter() - started)
        return latencies
    finally:
        await connection.close()


def report(
    options: LoadOptions,
    calls: dict[str, list[LoadResult]],
    commits: dict[str, list[float]],
    title: str,
) -> Section:
    median = {mode: median_round(results) for mode, results in calls.items()}
    ordered = {mode: sorted(latencies) for mode, latencies in commits.items()}

    def commit_ms(mode: str, q: float) -> float:
        return percentile(ordered[mode], q) * 1000

    rows = [
        [
            mode,
            f"{median[mode].rps:,.0f}",
            f"{median[mode].percentile_ms(50):.2f}",
            f"{median[mode].percentile_ms(99):.2f}",
            f"{commit_ms(mode, 50):.2f}",
            f"{commit_ms(mode, 99):.2f}",
        ]
        for mode in (SYNC, ASYNC)
    ]
    rows.append(
        [
            "ratio synchronous/asynchronous",
            ratio(median[SYNC].rps, median[ASYNC].rps),
            ratio(median[SYNC].percentile_ms(50), median[ASYNC].percentile_ms(50)),
            ratio(median[SYNC].percentile_ms(99), median[ASYNC].percentile_ms(99)),
            ratio(commit_ms(SYNC, 50), commit_ms(ASYNC, 50)),
            ratio(commit_ms(SYNC, 99), commit_ms(ASYNC, 99)),
        ]
    )
    notes = [
        f"{options.rounds} alternating rounds of {options.requests} signed /route calls per "
        f"mode after {options.warmup} warm-up each, concurrency {options.concurrency}, one "
        "`switchboard serve` on the multi-host URL of a primary and a standby on this machine "
        "(fsync on); median round by calls/s. "
        f"Commit: {COMMITS} one-row autocommit INSERTs of one connection per mode and round.",
        "calls/s per round: "
        + "; ".join(
            f"{mode} " + ", ".join(f"{result.rps:,.0f}" for result in calls[mode])
            for mode in (SYNC, ASYNC)
        ),
    ]
    return Section(
        title,
        ["mode", "calls/s", "p50 ms", "p99 ms", "commit p50 ms", "commit p99 ms"],
        rows,
        notes=notes,
    )
