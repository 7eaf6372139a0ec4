"""Benchmark ``replicas``: ``/route`` on SQLite, on PostgreSQL, and on three replicas sharing
one PostgreSQL; then how fast a routing change reaches all three (issue #17 item 3).

Three setups run side by side in one run, each the installed ``switchboard serve`` after
``switchboard config apply`` of the ``rollback-propagation`` document (hotline always open,
admin calls to the partner, no guard):

* ``sqlite x1``: one process on a SQLite file (WAL, ``synchronous=FULL``, group commit);
* ``postgres x1``: one process on a database of a throwaway PostgreSQL server;
* ``postgres x3``: three processes on another database of the same server, the load spread
  over them round robin by the load generator (no proxy: each request goes to the next
  replica's port). Every process checks signatures against one public URL, as replicas
  behind a load balancer do.

The server runs with PostgreSQL's durable defaults (``fsync``, ``synchronous_commit`` and
``full_page_writes`` on; the tests' server turns them off), so a commit costs what it costs
in production and the comparison with SQLite's ``synchronous=FULL`` is fair. Rounds rotate
the order of the setups. The load is :func:`bench.harness.drive_spread`, the same closed loop
as ``voice-route``, with the same signed Gathers (digit 1, a new CallSid each).

Where the CPU goes: the serve processes (``/proc/PID/stat``), the PostgreSQL backends of the
setup's database (their command line names it) and the rest of the server (postmaster,
WAL writer, checkpointer, exited children); and the whole machine's busy share from
``/proc/stat``, which shows what other work took. On a small machine the processes share
the same cores, so the rps of three replicas shows no scaling; the CPU per call is the figure
that carries over to other machines. ``pg_stat_statements`` counts the statements and
commits per contact.

Propagation: ``switchboard rollback`` / ``resume`` alternately (``--replica-flips``) on the
three replicas' database; after each, every replica's ``/readyz`` is polled until all three
report the new version; the figure is from the version's ``created_at`` (stamped by the CLI
just before its commit) to the moment the last (and the first) replica answered with it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.harness import (
    LoadOptions,
    LoadResult,
    PreparedRequest,
    Section,
    command_process,
    drive_spread,
    free_port,
    log_tail,
    markdown_table,
    median_round,
    percentile,
    process_cpu_seconds,
    switchboard_environment,
)
from bench.rollback import bench_document, run_command, setup_command, switchboard_script
from bench.servers import ROUTE_PATH
from bench.webhook import EXPECTED, TWILIO_TOKEN, gather_forms, logged_events, signed
from tests.pg_server import PostgresServer, start_postgres

#: PostgreSQL as production runs it, plus the statement statistics of the profile.
DURABLE_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
}
#: Every replica checks signatures against this one URL, as behind a load balancer.
PUBLIC_URL = "https://switchboard.bench.example"
SQLITE, PG1, PG3 = "sqlite x1", "postgres x1", "postgres x3"
SETUPS = (SQLITE, PG1, PG3)
DATABASES = {PG1: "replicas_one", PG3: "replicas_three"}
REPLICAS = 3
#: A flip not on every replica within this long is a failure (SPEC §4 promises 1 s).
PROPAGATION_LIMIT = 5.0
#: Statements shown in the profile, most time first.
PROFILED_STATEMENTS = 8


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds so far: the serve processes, the PostgreSQL backends serving the setup's
    database, the rest of the PostgreSQL server, and the whole machine (busy and total)."""

    serve: float
    backends: float
    postgres_other: float
    machine_busy: float
    machine_total: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(
            self.serve - other.serve,
            self.backends - other.backends,
            self.postgres_other - other.postgres_other,
            self.machine_busy - other.machine_busy,
            self.machine_total - other.machine_total,
        )


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of every core since boot, from ``/proc/stat``."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    tick = float(os.sysconf("SC_CLK_TCK"))
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def postgres_seconds(server: PostgresServer, database: str | None) -> tuple[float, float]:
    """(backends of *database*, everything else) CPU seconds of the PostgreSQL server. The
    postmaster's own figure includes the children it has reaped (``cutime``/``cstime``)."""
    backends = other = 0.0
    tick = float(os.sysconf("SC_CLK_TCK"))
    postmaster, *children = server.processes()
    for pid in [postmaster, *children]:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # it ended meanwhile: its CPU is in the postmaster's cutime now
        fields = stat[stat.rindex(")") + 2 :].split()
        own = (int(fields[11]) + int(fields[12])) / tick
        reaped = (int(fields[13]) + int(fields[14])) / tick
        words = title.removeprefix("postgres: ").split()
        # a backend's title: "postgres: USER DATABASE HOST(PORT) STATE"
        if database is not None and len(words) > 1 and words[:2] == [server.user, database]:
            backends += own
        else:
            other += own + (reaped if pid == postmaster else 0.0)
    return backends, other


@dataclass(slots=True)
class Setup:
    """One configuration under test: its processes and where to reach them."""

    name: str
    urls: list[str]
    pids: list[int]
    logs: list[Path]
    database: str | None  # PostgreSQL database name; None on SQLite
    env: dict[str, str]
    rounds: list[LoadResult] = field(default_factory=list)
    cpu: list[Cpu] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0

    def cpu_now(self, server: PostgresServer) -> Cpu:
        serve = sum(process_cpu_seconds(pid) or 0.0 for pid in self.pids)
        backends, other = postgres_seconds(server, self.database)
        busy, total = machine_seconds()
        return Cpu(serve, backends, other, busy, total)


@dataclass(frozen=True, slots=True)
class Flip:
    version: int
    first_seen: float  # time.time() when the first replica answered with it
    last_seen: float  # … and the last
    command_end: float  # time.time() when the CLI exited
    created_at: float = math.nan  # the version's created_at (epoch seconds)


@asynccontextmanager
async def postgres() -> AsyncIterator[PostgresServer]:
    server = await asyncio.to_thread(start_postgres, "replicas", DURABLE_SETTINGS)
    try:
        await asyncio.to_thread(server.psql, "CREATE EXTENSION pg_stat_statements")
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def start_setup(
    stack: AsyncExitStack,
    name: str,
    work: Path,
    database_url: str | None,
    database: str | None,
    replicas: int,
) -> Setup:
    """Apply the benchmark's routing document to the setup's database and start *replicas*
    ``switchboard serve`` processes on it."""
    script = str(switchboard_script())
    home = work / name.replace(" ", "-")
    home.mkdir()
    env = switchboard_environment(home, PUBLIC_URL, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    env["SWITCHBOARD_ACTOR"] = "cli:bench"
    if database_url is not None:
        env["SWITCHBOARD_DATABASE_URL"] = database_url
    document = home / "routing.yaml"
    bench_document(document)
    await setup_command([script, "config", "apply", str(document), "--reason", "bench"], env, home)
    setup = Setup(name, [], [], [], database, env)
    for index in range(replicas):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = home / f"serve-{index}.log"
        replica_env = {
            **env,
            "SWITCHBOARD_PORT": str(port),
            "SWITCHBOARD_VAR_DIR": str(home / f"var-{index}"),
        }
        process = await stack.enter_async_context(
            command_process(
                [script, "serve"], env=replica_env, log_path=log, ready_url=url + "/readyz"
            )
        )
        setup.urls.append(url + ROUTE_PATH)
        setup.pids.append(process.pid)
        setup.logs.append(log)
    return setup


async def replicas(options: LoadOptions) -> Section:
    rng = random.Random(20261217)
    per_setup = options.warmup + options.rounds * options.requests
    forms = {name: gather_forms(per_setup, rng) for name in SETUPS}
    requests = {name: signed(PUBLIC_URL + ROUTE_PATH, forms[name], TWILIO_TOKEN) for name in SETUPS}
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        async with postgres() as server, AsyncExitStack() as stack:
            setups = {
                SQLITE: await start_setup(stack, SQLITE, work, None, None, 1),
                PG1: await start_setup(
                    stack, PG1, work, server.create_database(DATABASES[PG1]), DATABASES[PG1], 1
                ),
                PG3: await start_setup(
                    stack,
                    PG3,
                    work,
                    server.create_database(DATABASES[PG3]),
                    DATABASES[PG3],
                    REPLICAS,
                ),
            }
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=options.concurrency),
                timeout=aiohttp.ClientTimeout(total=30),
            )
            async with session:
                await load_rounds(session, server, setups, requests, options)
                statements = await asyncio.to_thread(statement_profile, server, setups)
                commits = {
                    name: await asyncio.to_thread(commits_per_call, server, setup)
                    for name, setup in setups.items()
                    if setup.database is not None
                }
                flips, flip_problems = await propagation(session, server, setups[PG3], options)
            stored = {
                name: await stored_count(server, setup, work) for name, setup in setups.items()
            }
        return report(options, setups, statements, commits, flips, flip_problems, stored)


async def load_rounds(
    session: aiohttp.ClientSession,
    server: PostgresServer,
    setups: Mapping[str, Setup],
    requests: Mapping[str, Sequence[PreparedRequest]],
    options: LoadOptions,
) -> None:
    """Warm every setup up, then ``options.rounds`` rounds, the order rotated each round."""

    async def load(setup: Setup, first: int, count: int, label: str) -> LoadResult:
        before = setup.cpu_now(server)
        result = await drive_spread(
            session,
            setup.urls,
            requests[setup.name][first : first + count],
            concurrency=options.concurrency,
            label=label,
            expect=EXPECTED,
            server_pids=setup.pids,
        )
        setup.errors += result.errors
        setup.ok += result.ok
        if label != "warm-up":
            setup.rounds.append(result)
            setup.cpu.append(setup.cpu_now(server) - before)
        return result

    for setup in setups.values():
        await load(setup, 0, options.warmup, "warm-up")
    await asyncio.to_thread(server.psql, "SELECT pg_stat_statements_reset()")
    order = list(setups.values())
    for index in range(options.rounds):
        first = options.warmup + index * options.requests
        for setup in order[index % len(order) :] + order[: index % len(order)]:
            await load(setup, first, options.requests, f"round {index + 1}")


@dataclass(frozen=True, slots=True)
class Statement:
    setup: str
    query: str
    per_call: float  # executions per successful timed request
    mean_ms: float
    share: float  # of the database's statement time


def statement_profile(server: PostgresServer, setups: Mapping[str, Setup]) -> list[Statement]:
    """The statements each PostgreSQL setup ran in its timed rounds, most time first."""
    found: list[Statement] = []
    for setup in setups.values():
        if setup.database is None:
            continue
        calls = sum(result.ok for result in setup.rounds)
        rows = server.psql(
            "SELECT s.calls, s.total_exec_time, regexp_replace(s.query, '\\s+', ' ', 'g') "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            f"WHERE d.datname = '{setup.database}' ORDER BY s.total_exec_time DESC"
        )
        parsed = [line.split("|", 2) for line in rows.splitlines() if line.count("|") >= 2]
        total = sum(float(time_ms) for _, time_ms, _ in parsed) or 1.0
        for count, time_ms, query in parsed[:PROFILED_STATEMENTS]:
            found.append(
                Statement(
                    setup=setup.name,
                    query=query,
                    per_call=int(count) / calls if calls else math.nan,
                    mean_ms=float(time_ms) / int(count) if int(count) else math.nan,
                    share=float(time_ms) / total,
                )
            )
    return found


def commits_per_call(server: PostgresServer, setup: Setup) -> float:
    """COMMITs per successful timed request (pg_stat_statements tracks utility statements);
    the replicas' routing polls are read-only and end in ROLLBACK."""
    assert setup.database is not None
    out = server.psql(
        "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database d "
        f"ON d.oid = s.dbid WHERE d.datname = '{setup.database}' AND s.query = 'COMMIT'"
    )
    calls = sum(result.ok for result in setup.rounds)
    return int(out.strip() or 0) / calls if calls else math.nan


async def propagation(
    session: aiohttp.ClientSession, server: PostgresServer, setup: Setup, options: LoadOptions
) -> tuple[list[Flip], list[str]]:
    """Flip routing from the CLI ``options.replica_flips`` times; after each, wait until every
    replica's /readyz reports the new version."""
    script = str(switchboard_script())
    readyz = [url.removesuffix(ROUTE_PATH) + "/readyz" for url in setup.urls]
    flips: list[Flip] = []
    problems: list[str] = []
    for index in range(options.replica_flips):
        action = "rollback" if index % 2 == 0 else "resume"
        done = await run_command(
            [script, action, "--reason", f"bench flip {index}", "--format", "json"],
            setup.env,
            Path(setup.env["SWITCHBOARD_VAR_DIR"]).parent,
        )
        command_end = time.time()
        if done.returncode != 0:
            problems.append(done.describe())
            break
        version = int(json.loads(done.stdout)["version"])
        seen: dict[int, float] = {}
        deadline = time.monotonic() + PROPAGATION_LIMIT
        while len(seen) < len(readyz) and time.monotonic() < deadline:
            answers = await asyncio.gather(*(ready_version(session, url) for url in readyz))
            now = time.time()
            for replica, answered in enumerate(answers):
                if answered >= version:
                    seen.setdefault(replica, now)
            await asyncio.sleep(0.002)
        if len(seen) < len(readyz):
            problems.append(f"version {version} not on every replica within {PROPAGATION_LIMIT} s")
            break
        flips.append(Flip(version, min(seen.values()), max(seen.values()), command_end))
    created = await asyncio.to_thread(created_at, server, setup)
    return [
        Flip(f.version, f.first_seen, f.last_seen, f.command_end, created.get(f.version, math.nan))
        for f in flips
    ], problems


async def ready_version(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as response:
            return int((await response.json())["version"])
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
        return -1


def created_at(server: PostgresServer, setup: Setup) -> dict[int, float]:
    assert setup.database is not None
    out = server.psql(
        "SELECT version, extract(epoch FROM created_at) FROM routing_versions", setup.database
    )
    return {
        int(version): float(epoch)
        for version, epoch in (line.split("|") for line in out.splitlines() if "|" in line)
    }


async def stored_count(server: PostgresServer, setup: Setup, work: Path) -> int:
    """Interactions in the setup's database (one per successful request is the check)."""
    if setup.database is not None:
        out = await asyncio.to_thread(
            server.psql, "SELECT count(*) FROM interactions", setup.database
        )
        return int(out.strip())
    from bench.webhook import stored_interactions

    home = work / setup.name.replace(" ", "-")
    return stored_interactions(home / "switchboard.db")


# -- the report -----------------------------------------------------------------------------


def ms(seconds: float, calls: int) -> float:
    return seconds * 1000.0 / calls if calls else math.nan


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


@dataclass(frozen=True, slots=True)
class Figures:
    """A setup's median round and its CPU per call."""

    result: LoadResult
    serve_ms: float
    backends_ms: float
    postgres_other_ms: float
    machine_busy: float  # share of all cores busy over the round
    ours_busy: float  # … of which our processes (serve, PostgreSQL, load generator)

    @property
    def total_ms(self) -> float:
        return self.serve_ms + self.backends_ms + self.postgres_other_ms


def figures(setup: Setup) -> Figures:
    result = median_round(setup.rounds)
    cpu = setup.cpu[setup.rounds.index(result)]
    calls = result.ok
    ours = cpu.serve + cpu.backends + cpu.postgres_other + result.client_cpu_seconds
    total = cpu.machine_total or math.nan
    return Figures(
        result,
        ms(cpu.serve, calls),
        ms(cpu.backends, calls),
        ms(cpu.postgres_other, calls),
        cpu.machine_busy / total,
        ours / total,
    )


def report(
    options: LoadOptions,
    setups: Mapping[str, Setup],
    statements: Sequence[Statement],
    commits: Mapping[str, float],
    flips: Sequence[Flip],
    flip_problems: Sequence[str],
    stored: Mapping[str, int],
) -> Section:
    found = {name: figures(setup) for name, setup in setups.items()}
    rows = [
        [
            name,
            f"{fig.result.rps:,.0f}",
            f"{fig.result.percentile_ms(50):.2f}",
            f"{fig.result.percentile_ms(99):.2f}",
            f"{fig.serve_ms:.2f}",
            f"{fig.backends_ms:.2f}",
            f"{fig.postgres_other_ms:.2f}",
            f"{fig.total_ms:.2f}",
            f"{1000.0 / fig.total_ms:,.0f}" if fig.total_ms else "n/a",
            f"{fig.machine_busy:.0%} ({fig.ours_busy:.0%})",
        ]
        for name, fig in found.items()
    ]
    for label, a, b in (("PG1/SQLite", PG1, SQLITE), ("PG3/PG1", PG3, PG1)):
        fa, fb = found[a], found[b]
        rows.append(
            [
                f"ratio {label}",
                ratio(fa.result.rps, fb.result.rps),
                ratio(fa.result.percentile_ms(50), fb.result.percentile_ms(50)),
                ratio(fa.result.percentile_ms(99), fb.result.percentile_ms(99)),
                ratio(fa.serve_ms, fb.serve_ms),
                "",
                "",
                ratio(fa.total_ms, fb.total_ms),
                "",
                "",
            ]
        )
    notes = [
        f"{options.rounds} rounds of {options.requests} signed /route requests per setup "
        f"(order rotated each round) after {options.warmup} warm-up each, concurrency "
        f"{options.concurrency}, spread round robin over the setup's replicas; median round "
        "by rps. PostgreSQL with fsync, synchronous_commit and full_page_writes on.",
        "rps per round: "
        + "; ".join(
            f"{name} " + ", ".join(f"{r.rps:,.0f}" for r in setup.rounds)
            for name, setup in setups.items()
        ),
        "CPU ms/call: serve = the switchboard serve processes; PG backends = the PostgreSQL "
        "processes serving that setup's database; PG other = the rest of the server (WAL "
        "writer, checkpointer, the postmaster, other databases' idle replicas' polls). "
        "calls/s per core = 1000 / CPU ms per call: what one fully busy core sustains. "
        "machine busy = all cores over the round from /proc/stat (in parentheses: the part "
        "this benchmark's processes, load generator included, account for; the rest is "
        "other work on the machine).",
        f"On this {os.cpu_count()}-core machine the load generator, every "
        "replica and PostgreSQL share the cores, so three replicas cannot show scaling in "
        "rps; the CPU per call is the figure that carries over.",
    ]
    statement_rows = [
        [s.setup, s.query[:90], f"{s.per_call:.2f}", f"{s.mean_ms:.3f}", f"{s.share:.0%}"]
        for s in statements
    ]
    notes.append("")
    notes.append(
        "statements per call (pg_stat_statements over the timed rounds; per call = executions "
        "/ successful requests, the replicas' routing polls included):"
    )
    notes.append(
        markdown_table(["setup", "statement", "per call", "mean ms", "time"], statement_rows)
    )
    notes.append("")
    notes.append(
        "COMMITs per call: " + ", ".join(f"{name} {value:.2f}" for name, value in commits.items())
    )
    failures: list[str] = []
    if flips:
        to_last = sorted(f.last_seen - f.created_at for f in flips)
        to_first = sorted(f.first_seen - f.created_at for f in flips)
        after_exit = sorted(f.last_seen - f.command_end for f in flips)
        notes.append(
            f"propagation over {REPLICAS} replicas, {len(flips)} CLI flips (rollback/resume): "
            f"commit -> every replica p50 {percentile(to_last, 50) * 1000:.0f} ms, max "
            f"{to_last[-1] * 1000:.0f} ms; -> first replica p50 "
            f"{percentile(to_first, 50) * 1000:.0f} ms, max {to_first[-1] * 1000:.0f} ms; "
            f"CLI exit -> every replica p50 {percentile(after_exit, 50) * 1000:.0f} ms, max "
            f"{after_exit[-1] * 1000:.0f} ms (created_at is stamped just before the commit; "
            "each figure is an upper bound by one /readyz poll of the three, a few ms)."
        )
    failures += list(flip_problems)
    for name, setup in setups.items():
        if setup.errors:
            failures.append(f"{name}: {sum(setup.errors.values())} failed {dict(setup.errors)}")
        if stored[name] != setup.ok:
            failures.append(f"{name}: {stored[name]} interactions for {setup.ok} answered calls")
        unrecorded = sum(logged_events(log)["contact.unrecorded"] for log in setup.logs)
        if unrecorded:
            failures.append(f"{name}: {unrecorded} calls answered but not recorded")
        if failures:
            notes.append(f"{name} log tail:\n{log_tail(setup.logs[0], 5)}")
    return Section(
        title="replicas: /route on SQLite, PostgreSQL and 3 PostgreSQL replicas; propagation",
        headers=[
            "setup",
            "rps",
            "p50 ms",
            "p99 ms",
            "serve CPU ms/call",
            "PG backends ms/call",
            "PG other ms/call",
            "CPU ms/call",
            "calls/s per core",
            "machine busy",
        ],
        rows=rows,
        notes=notes,
        failures=failures,
    )
