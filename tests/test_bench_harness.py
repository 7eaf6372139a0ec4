"""The benchmark harness's own parts that a wrong figure would come from: the open-loop load
and the goals table of ``make bench``."""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.harness import Goal, PreparedRequest, Section, drive_spread, paced
from bench.run import goals_table


async def answering_server(seen: list[float]) -> TestServer:

    async def handler(request: web.Request) -> web.Response:
        seen.append(time.perf_counter())
        body = await request.read()
        if body == b"bad":
            return web.Response(status=500, text="no")
        return web.Response(text="<Dial>ok</Dial>")

    app = web.Application()
    app.router.add_post("/", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_paced_load_keeps_its_rate_and_counts_every_answer() -> None:
    arrivals: list[float] = []
    server = await answering_server(arrivals)
    requests = [PreparedRequest(body=b"good", headers={}) for _ in range(40)]
    requests[7] = PreparedRequest(body=b"bad", headers={})
    try:
        async with aiohttp.ClientSession() as session:
            result = await paced(
                session,
                str(server.make_url("/")),
                requests,
                rate=100.0,
                label="t",
                expect=b"<Dial>",
            )
    finally:
        await server.close()
    assert result.ok == 39
    assert result.errors == {"HTTP 500": 1}
    # 40 requests due 10 ms apart: the last is due at 0.39 s, so the run cannot be shorter,
    # and it is not a closed loop that would go as fast as the server answers
    assert result.seconds >= 0.39
    assert arrivals[-1] - arrivals[0] >= 0.35
    assert all(latency > 0 for latency in result.latencies)


def test_goals_table_gives_each_goal_its_verdict_and_names_what_did_not_run() -> None:
    section = Section(
        title="t",
        headers=["a"],
        rows=[["1"]],
        goals=[
            Goal("1 throughput", "700 rps = 0.06x", "bare 12,000 rps", ">= 0.40x", met=False),
            Goal("1 p99", "p99 8 ms", "bare p99 2 ms", "<= 10 ms", met=True),
        ],
    )
    table = goals_table([section], ["voice-route"])
    lines = table.splitlines()
    p99 = next(line for line in lines if line.startswith("| 1 p99"))
    throughput = next(line for line in lines if line.startswith("| 1 throughput"))
    assert p99.rstrip(" |").endswith("met") and "not met" not in p99
    assert "not met" in throughput
    assert any("--only email" in line and "not run" in line for line in lines)
    assert any("--only scaling" in line for line in lines)
    assert any("make soak" in line and "not run" in line for line in lines)
    assert not any("--only voice-route" in line for line in lines)
    assert "1 of 2 measured goals met." in table


async def test_voice_route_benchmark_runs_end_to_end_with_its_latency_curve() -> None:
    """A small ``make bench`` voice-route run: both servers, the paced runs and the curve of
    Switchboard alone; every answered call is in the database and the goals are reported."""
    from bench.harness import LoadOptions
    from bench.webhook import CURVE_SHARES, voice_route

    section = await voice_route(LoadOptions(requests=40, warmup=10, rounds=1))
    assert section.failures == []
    rendered = section.render()
    for share in CURVE_SHARES:
        assert f"switchboard, paced at {share:.0%}" in rendered
    assert "bare aiohttp, paced" in rendered
    assert {goal.key for goal in section.goals} == {"1 throughput", "1 p99"}


async def test_spread_load_sends_request_i_to_replica_i_modulo_their_number() -> None:
    arrivals: list[list[float]] = [[], [], []]
    servers = [await answering_server(seen) for seen in arrivals]
    requests = [PreparedRequest(body=b"good", headers={}) for _ in range(31)]
    try:
        async with aiohttp.ClientSession() as session:
            result = await drive_spread(
                session,
                [str(server.make_url("/")) for server in servers],
                requests,
                concurrency=4,
                label="t",
                expect=b"<Dial>",
            )
    finally:
        for server in servers:
            await server.close()
    assert result.ok == 31
    # 31 requests over 3 replicas: 11, 10, 10
    assert [len(seen) for seen in arrivals] == [11, 10, 10]


async def test_replicas_benchmark_runs_end_to_end_on_sqlite_and_postgresql() -> None:
    """A small ``bench.run --only replicas``: three setups, every answered call stored once
    (the benchmark's own check), exactly one interaction INSERT per call in the statement
    profile, and a few CLI flips seen on all three replicas."""
    from bench.harness import LoadOptions
    from bench.replicas import replicas
    from tests.conftest_pg import postgres_unavailable
    from tests.pg_server import PostgresUnavailable, find_pg_bindir

    if find_pg_bindir() is None:
        postgres_unavailable(str(PostgresUnavailable("PostgreSQL is not installed")))
    section = await replicas(
        LoadOptions(requests=60, warmup=10, rounds=1, concurrency=4, replica_flips=2)
    )
    assert section.failures == []
    assert [row[0] for row in section.rows] == [
        "sqlite x1",
        "postgres x1",
        "postgres x3",
        "ratio PG1/SQLite",
        "ratio PG3/PG1",
    ]
    rendered = section.render()
    inserts = [line for line in rendered.splitlines() if "INSERT INTO interactions" in line]
    assert len(inserts) == 2  # one per PostgreSQL setup
    assert all(line.split("|")[3].strip() == "1.00" for line in inserts)
    assert "2 CLI flips" in rendered


def test_a_generated_day_leaves_the_rows_counted_by_hand() -> None:
    from bench.sizing import Expected, expected_rows, generate

    # per 100 contacts: replies 2x1 (abandoned) + 37x2 + 4x3 + 2x4 = 96; attempts 37 + 4x2 +
    # 2x(2 dials + voicemail + delivery) + 35 + 20 = 108; forwards 2 + 35 + 20 = 57
    assert expected_rows(1000) == Expected(1000, 960, 1080, 570)
    day = generate(1000)
    assert (
        len(day.interactions),
        len(day.webhook_replies),
        len(day.attempts),
        len(day.outbox),
    ) == (1000, 960, 1080, 570)
    channels = [row[1] for row in day.interactions]
    assert (channels.count("phone"), channels.count("email"), channels.count("chat")) == (
        450,
        350,
        200,
    )


async def test_sizing_benchmark_measures_the_generated_day_on_both_databases() -> None:
    from bench.harness import LoadOptions
    from bench.sizing import sizing
    from tests.conftest_pg import postgres_unavailable
    from tests.pg_server import PostgresUnavailable, find_pg_bindir

    if find_pg_bindir() is None:
        postgres_unavailable(str(PostgresUnavailable("PostgreSQL is not installed")))
    section = await sizing(LoadOptions(sizing_interactions=1000))
    # the benchmark compares the tables' counts with the hand-counted ones above
    assert section.failures == []
    rows = {row[0]: row for row in section.rows}
    assert rows["interactions"][1:3] == ["1,000", "1.00"]
    assert rows["attempts"][1:3] == ["1,080", "1.08"]
    assert rows["webhook_replies"][1:3] == ["960", "0.96"]
    assert rows["outbox"][1:3] == ["570", "0.57"]
    assert float(rows["interactions"][-1]) > 0  # SQLite's pages of the table (dbstat)
