"""Benchmark ``rollback-propagation``: how long after the on-call person starts a routing
change does the running service route a call by it?

The real service runs as the installed ``switchboard serve`` on a SQLite file in a temporary
directory, with a routing document in which the hotline is always open and every admin
caller goes to the partner (``cutover: {phone: {admin: 100}}``); after a rollback they go to
the hotline. One *flip* alternates ``switchboard rollback`` and ``switchboard resume`` (the
CLI as a subprocess, working on the database, as on-call would run it), then the same through
the HTTP API (``POST /api/rollback`` / ``/api/resume`` with an operator token). From just
before the command starts, a probe sends signed Gather results (digit 1, a new CallSid each)
back to back, and the flip's figure is when the first answer dials the new destination.

There is no baseline server here; the reference is the command's own wall time, so the
report shows how much of the propagation is Python start-up and how much is the service.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.harness import (
    REPO_ROOT,
    Goal,
    LoadOptions,
    PreparedRequest,
    Section,
    ServerFailed,
    command_process,
    free_port,
    log_tail,
    percentile,
    switchboard_environment,
)
from bench.servers import ROUTE_PATH
from bench.webhook import (
    TWILIO_TOKEN,
    gather_forms,
    logged_events,
    signed,
    stored_interactions,
)

#: Where an admin call goes with the cut-over at 100 (target) and after a rollback (baseline).
PARTNER, HOTLINE = "+420800100200", "+420222333444"
#: A flip not seen by the probe within this long after the command started is a failure.
PROBE_SECONDS = 5.0
#: A CLI command, a setup command or an API request taking longer than this is a failure.
COMMAND_SECONDS = 30.0
#: The whole benchmark stops starting flips after this many seconds per planned flip.
SECONDS_PER_FLIP = 6.0
#: Signed probe requests kept ready before each flip (a flip takes far fewer at ~10 ms each).
PROBE_POOL = 600
#: Runs of the start-up references (`python -c pass`, `switchboard --help`).
STARTUP_RUNS = 5
#: Issue #14 goal 4: from the command's start to the service routing by it, the worst flip.
CLI_GOAL_SECONDS = 0.5
CLI_STRETCH_SECONDS = 0.2
API_GOAL_SECONDS = 0.1
REASON = "bench"
CLI_ACTOR = "cli:bench"
TOKEN_NAME = "bench"
CLI, API = "CLI", "HTTP API"
NUMBER = re.compile(rb"<Number[^>]*>([^<]+)</Number>")


def switchboard_script() -> Path:
    """The installed console script next to this interpreter (``.venv/bin/switchboard``)."""
    script = Path(sys.executable).with_name("switchboard")
    if not script.exists():
        raise ServerFailed(f"{script}: no `switchboard` console script (run `make` first)")
    return script


def bench_document(path: Path) -> None:
    """config/routing.yaml with the hotline always open (the result must not depend on the
    time of day), every admin caller on the partner, and no guard (the probe's calls never
    report a dial outcome, and an automatic rollback would be a flip nobody started)."""
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "config" / "routing.yaml").read_text())
    data["destinations"]["hotline"]["hours"] = "always"
    data["cutover"] = {"phone": {"admin": 100}}
    data.pop("guard", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished command: exit code, output, and wall time from spawn to exit."""

    argv: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        return (
            f"`{' '.join(self.argv)}` exited {self.returncode}: "
            f"{(self.stderr or self.stdout).strip()[-500:]}"
        )


async def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Completed:
    """Run *argv* to completion (killed after COMMAND_SECONDS, exit code -9 then)."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_SECONDS)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
    seconds = time.perf_counter() - started
    assert process.returncode is not None
    return Completed(
        argv=[Path(argv[0]).name, *argv[1:]],
        returncode=process.returncode,
        stdout=out.decode(errors="replace"),
        stderr=err.decode(errors="replace"),
        seconds=seconds,
    )


async def setup_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """A command the benchmark needs to succeed (apply, token, history): its stdout."""
    done = await run_command(argv, env, cwd)
    if done.returncode != 0:
        raise ServerFailed(done.describe())
    return done.stdout


class ProbePool:
    """Signed Gather results for the probe, signed before a flip starts (signing is the
    client's cost, not the service's); refilled between flips."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        self.ready: list[PreparedRequest] = []
        self.signed_in_flight = 0

    def refill(self) -> None:
        missing = PROBE_POOL - len(self.ready)
        if missing > 0:
            self.ready.extend(signed(self.url, gather_forms(missing, self.rng), TWILIO_TOKEN))

    def take(self) -> PreparedRequest:
        if not self.ready:  # only if one flip needed more than PROBE_POOL probes
            self.signed_in_flight += 1
            self.refill()
        return self.ready.pop()


@dataclass(slots=True)
class Flip:
    """One routing change and what the probe saw of it; times in seconds after the start."""

    path: str
    action: str
    expected: str
    seen: float | None = None  # the answer dialling *expected* arrived
    seen_sent: float | None = None  # ... and its request had been sent
    command: float | None = None  # the CLI exited / the API answered
    stamped: float | None = None  # the new version's created_at (from `config history`)
    wall_start: float = 0.0  # time.time() at the start, to place created_at
    probes: int = 0
    problem: str | None = None


@dataclass(slots=True)
class Probe:
    """Everything the probe saw across flips."""

    round_trips: list[float] = field(default_factory=list)
    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def probe_until(
    session: aiohttp.ClientSession,
    pool: ProbePool,
    flip: Flip,
    started: float,
    probe: Probe,
) -> None:
    """Send probes back to back until one is answered with a dial of *flip.expected*, or
    PROBE_SECONDS after *started* have passed."""
    deadline = started + PROBE_SECONDS
    while time.perf_counter() < deadline:
        request = pool.take()
        sent = time.perf_counter()
        try:
            async with session.post(pool.url, data=request.body, headers=request.headers) as rsp:
                payload = await rsp.read()
                status = rsp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            probe.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.01)  # a refused connection would otherwise spin
            continue
        received = time.perf_counter()
        flip.probes += 1
        if status != 200:
            probe.errors[f"HTTP {status}"] += 1
            continue
        probe.answered += 1
        probe.round_trips.append(received - sent)
        match = NUMBER.search(payload)
        number = match.group(1).decode() if match else None
        if number not in (PARTNER, HOTLINE):
            probe.errors["unexpected body"] += 1
        elif number == flip.expected:
            flip.seen, flip.seen_sent = received - started, sent - started
            return


async def cli_flip(
    script: Path,
    env: Mapping[str, str],
    cwd: Path,
    session: aiohttp.ClientSession,
    pool: ProbePool,
    flip: Flip,
    probe: Probe,
) -> None:
    flip.wall_start, started = time.time(), time.perf_counter()
    watcher = asyncio.create_task(probe_until(session, pool, flip, started, probe))
    done = await run_command([str(script), flip.action, "--reason", REASON], env, cwd)
    flip.command = done.seconds
    await watcher
    if done.returncode != 0:
        flip.problem = done.describe()


async def api_flip(
    api_session: aiohttp.ClientSession,
    base: str,
    token: str,
    session: aiohttp.ClientSession,
    pool: ProbePool,
    flip: Flip,
    probe: Probe,
) -> None:
    flip.wall_start, started = time.time(), time.perf_counter()
    watcher = asyncio.create_task(probe_until(session, pool, flip, started, probe))
    try:
        async with api_session.post(
            f"{base}/api/{flip.action}",
            json={"reason": REASON},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            answer = await response.text()
            if response.status != 200:
                flip.problem = f"POST /api/{flip.action}: HTTP {response.status}: {answer[:300]}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        flip.problem = f"POST /api/{flip.action}: {type(exc).__name__}: {exc}"
    flip.command = time.perf_counter() - started
    await watcher


async def startup_reference(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> float:
    """Median wall time of *argv* over STARTUP_RUNS runs (spawn to exit), in seconds."""
    times: list[float] = []
    for _ in range(STARTUP_RUNS):
        done = await run_command(argv, env, cwd)
        if done.returncode != 0:
            raise ServerFailed(done.describe())
        times.append(done.seconds)
    return sorted(times)[(len(times) - 1) // 2]


async def rollback_propagation(options: LoadOptions) -> Section:
    flips_per_path = options.flips
    script = switchboard_script()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        work = Path(tmp)
        database = work / "switchboard.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = switchboard_environment(
            work,
            base,
            SWITCHBOARD_PORT=str(port),
            SWITCHBOARD_ACTOR=CLI_ACTOR,
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        )
        document = work / "routing.yaml"
        bench_document(document)
        sb = str(script)
        await setup_command(
            [sb, "config", "apply", str(document), "--reason", "bench: admin calls to partner"],
            env,
            work,
        )
        token_argv = [sb, "token", "create", "--name", TOKEN_NAME, "--role", "operator"]
        token_argv += ["--format", "json"]
        token = json.loads(await setup_command(token_argv, env, work))["token"]

        log_path = work / "switchboard.log"
        pool = ProbePool(base + ROUTE_PATH, random.Random(20261124))
        probe = Probe()
        flips: list[Flip] = []
        budget = 30.0 + SECONDS_PER_FLIP * 2 * flips_per_path
        over_budget = False
        async with (
            command_process(
                [sb, "serve"], env=env, log_path=log_path, ready_url=base + "/readyz"
            ) as server,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1),
                timeout=aiohttp.ClientTimeout(total=COMMAND_SECONDS),
            ) as session,
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=COMMAND_SECONDS)
            ) as api_session,
        ):
            # warm-up: the service routes admin calls to the partner before the first flip
            pool.refill()
            warm = Flip(path="warm-up", action="none", expected=PARTNER)
            await probe_until(session, pool, warm, time.perf_counter(), probe)
            if warm.seen is None:
                raise ServerFailed(
                    f"admin calls do not reach the partner {PARTNER} before any flip "
                    f"(probe errors {dict(probe.errors)}):\n{log_tail(log_path)}"
                )
            python_start = await startup_reference([sys.executable, "-c", "pass"], env, work)
            cli_start = await startup_reference([sb, "--help"], env, work)

            began = time.perf_counter()
            destination = PARTNER
            for path in (CLI, API):
                for _ in range(flips_per_path):
                    if time.perf_counter() - began > budget:
                        over_budget = True
                        break
                    rollback = destination == PARTNER
                    flip = Flip(
                        path=path,
                        action="rollback" if rollback else "resume",
                        expected=HOTLINE if rollback else PARTNER,
                    )
                    pool.refill()
                    if path == CLI:
                        await cli_flip(script, env, work, session, pool, flip, probe)
                    else:
                        await api_flip(api_session, base, token, session, pool, flip, probe)
                    flips.append(flip)
                    if flip.problem is not None or flip.seen is None:
                        break  # the routing in force is unknown now: later flips mean nothing
                    destination = flip.expected
                else:
                    continue
                break
            elapsed = time.perf_counter() - began
            server_pid = server.pid

        history = json.loads(
            await setup_command([sb, "config", "history", "--format", "json"], env, work)
        )
        interactions = stored_interactions(database)
        events = logged_events(log_path)
        section = report(
            flips_per_path,
            flips,
            probe,
            history,
            interactions,
            events,
            python_start=python_start,
            cli_start=cli_start,
            elapsed=elapsed,
            over_budget=over_budget,
            budget=budget,
            pool=pool,
        )
        section.notes.append(f"service: `switchboard serve` pid {server_pid}, SQLite, port {port}.")
        if section.failures:
            section.notes.append(f"last lines of the Switchboard log:\n{log_tail(log_path, 5)}")
        return section


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000.0:,.0f}"


def pct(values: Sequence[float], q: float) -> float:
    return percentile(sorted(values), q)


def place_versions(flips: Sequence[Flip], history: Sequence[Mapping[str, Any]]) -> None:
    """Give each flip the created_at of its version, relative to its start (when the stored
    versions are the expected ones, in order: they are checked in :func:`report`)."""
    stored = list(reversed(history))[1:]  # oldest first, without the initial apply
    made = [flip for flip in flips if flip.problem is None]
    if len(stored) != len(made):
        return
    for flip, item in zip(made, stored, strict=True):
        if item["kind"] == flip.action:
            created = datetime.fromisoformat(str(item["created_at"]))
            flip.stamped = created.timestamp() - flip.wall_start


def expected_history(flips: Sequence[Flip]) -> list[tuple[str, str]]:
    """(kind, actor) of every version, oldest first, that this run should have stored."""
    actors = {CLI: CLI_ACTOR, API: TOKEN_NAME}
    return [("apply", CLI_ACTOR)] + [
        (flip.action, actors[flip.path]) for flip in flips if flip.problem is None
    ]


def report(
    flips_per_path: int,
    flips: Sequence[Flip],
    probe: Probe,
    history: Sequence[Mapping[str, Any]],
    interactions: int,
    events: Counter[str],
    *,
    python_start: float,
    cli_start: float,
    elapsed: float,
    over_budget: bool,
    budget: float,
    pool: ProbePool,
) -> Section:
    place_versions(flips, history)
    rows: list[list[str]] = []
    seen_by_path: dict[str, list[float]] = {}
    after_command: dict[str, list[float]] = {}
    for path, label in (
        (CLI, "CLI `switchboard rollback|resume`"),
        (API, "POST /api/rollback|resume"),
    ):
        mine = [flip for flip in flips if flip.path == path]
        seen = [flip.seen for flip in mine if flip.seen is not None]
        commands = [flip.command for flip in mine if flip.command is not None]
        after_exit = [
            flip.seen - flip.command
            for flip in mine
            if flip.seen is not None and flip.command is not None
        ]
        stamped = [flip.stamped for flip in mine if flip.stamped is not None]
        pickup = [
            flip.seen - flip.stamped
            for flip in mine
            if flip.seen is not None and flip.stamped is not None
        ]
        seen_by_path[path] = seen
        after_command[path] = after_exit
        rows.append(
            [
                label,
                f"{len(seen)}/{flips_per_path}",
                ms(pct(seen, 50)),
                ms(pct(seen, 99)),
                ms(max(seen, default=math.nan)),
                ms(pct(commands, 50)),
                ms(pct(commands, 99)),
                ms(pct(stamped, 50)),
                ms(pct(pickup, 50)),
                ms(pct(pickup, 99)),
            ]
        )

    cli_seen = seen_by_path[CLI]
    by_action = "; ".join(
        f"{path} {action} p50 "
        + ms(
            pct(
                [
                    f.seen
                    for f in flips
                    if f.path == path and f.action == action and f.seen is not None
                ],
                50,
            )
        )
        for path in (CLI, API)
        for action in ("rollback", "resume")
    )
    notes = [
        f"{flips_per_path} flips per path, alternating rollback and resume (admin calls: "
        f"partner {PARTNER} <-> hotline {HOTLINE}); time from just before the command starts "
        "to the first probe answer dialling the new destination; "
        f"{len(flips)} flips in {elapsed:.0f} s.",
        f"p99 is nearest-rank: with {flips_per_path} flips it is rank "
        f"{math.ceil(0.99 * flips_per_path)} of {flips_per_path}"
        + (" (the max)." if math.ceil(0.99 * flips_per_path) == flips_per_path else "."),
        f"by action: {by_action} ms.",
        "command = the CLI's spawn -> exit, the API request -> answer; stamped = start -> the "
        "new version's created_at (taken in the command just before its transaction); "
        "stamp->decision = the service picking the version up (+ one probe round trip); "
        "decision - command end p50: "
        + ", ".join(f"{path} {ms(pct(after_command[path], 50))} ms" for path in (CLI, API))
        + " (negative: routed by the new version before the command had exited).",
        "probe: one signed Gather (digit 1, new CallSid) at a time, back to back; round trip "
        f"p50 {ms(pct(probe.round_trips, 50))} ms, p99 {ms(pct(probe.round_trips, 99))} ms — "
        "the resolution of each figure (the decision came at most one round trip before).",
        f"start-up references (median of {STARTUP_RUNS}, spawn to exit): `python -c pass` "
        f"{ms(python_start)} ms, `switchboard --help` (interpreter + imports) "
        f"{ms(cli_start)} ms.",
        "rollback and resume take the lean path on SQLite; the full command line starts in "
        f"~{ms(cli_start)} ms.",
        f"database: {len(history)} routing versions; {interactions} interactions for "
        f"{probe.answered} answered probes; log: {events['contact.routed']} contact.routed, "
        f"{events['contact.unrecorded']} contact.unrecorded, {events['error lines']} error lines.",
        f"probe errors: {sum(probe.errors.values())}"
        + (f" ({dict(probe.errors)})" if probe.errors else "")
        + (
            f"; {pool.signed_in_flight} pool refills during a flip" if pool.signed_in_flight else ""
        ),
    ]

    failures: list[str] = []
    if len(flips) < 2 * flips_per_path and not over_budget:
        failures.append(
            f"only {len(flips)} of {2 * flips_per_path} flips ran: the run stops at the first "
            "failed flip (the routing in force is unknown after it)"
        )
    for index, flip in enumerate(flips, start=1):
        if flip.problem is not None:
            failures.append(f"flip {index} ({flip.path} {flip.action}): {flip.problem}")
        elif flip.seen is None:
            failures.append(
                f"flip {index} ({flip.path} {flip.action}): no call dialled {flip.expected} "
                f"within {PROBE_SECONDS:g} s ({flip.probes} probes)"
            )
    if over_budget:
        failures.append(f"stopped after {len(flips)} flips: over the {budget:.0f} s budget")
    if probe.errors:
        failures.append(f"{sum(probe.errors.values())} failed probes {dict(probe.errors)}")
    stored = [(str(item["kind"]), str(item["actor"])) for item in reversed(history)]
    wanted = expected_history(flips)
    if stored != wanted:
        failures.append(
            f"the database holds {len(history)} versions, expected {len(wanted)} "
            f"(1 apply + {len(wanted) - 1} flips); kinds/actors differ from the first "
            f"mismatch: stored {stored[len(_common(stored, wanted)) :][:3]}, "
            f"expected {wanted[len(_common(stored, wanted)) :][:3]}"
        )
    if interactions != probe.answered:
        failures.append(
            f"the database holds {interactions} interactions, but {probe.answered} probes "
            "were answered"
        )
    if events["contact.unrecorded"]:
        failures.append(f"{events['contact.unrecorded']} calls were answered but not recorded")
    if events["error lines"]:
        failures.append(f"the service logged {events['error lines']} error lines")
    return Section(
        title="rollback-propagation: routing change started -> first call routed by it",
        headers=[
            "path",
            "flips seen",
            "p50 ms",
            "p99 ms",
            "max ms",
            "command p50 ms",
            "command p99 ms",
            "stamped p50 ms",
            "stamp->decision p50 ms",
            "stamp->decision p99 ms",
        ],
        rows=rows,
        notes=notes,
        failures=failures,
        goals=[
            Goal(
                key="4 CLI",
                figure=f"max {ms(max(cli_seen, default=math.nan))} ms",
                baseline=f"`python -c pass` {ms(python_start)} ms",
                target=f"<= {ms(CLI_GOAL_SECONDS)} ms (stretch {ms(CLI_STRETCH_SECONDS)})",
                met=max(cli_seen, default=math.inf) <= CLI_GOAL_SECONDS,
            ),
            Goal(
                key="4 API",
                figure=f"max {ms(max(seen_by_path[API], default=math.nan))} ms",
                baseline=f"probe round trip p50 {ms(pct(probe.round_trips, 50))} ms",
                target=f"<= {ms(API_GOAL_SECONDS)} ms",
                met=max(seen_by_path[API], default=math.inf) <= API_GOAL_SECONDS,
            ),
        ],
    )


def _common(a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The common prefix of *a* and *b*."""
    prefix: list[tuple[str, str]] = []
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        prefix.append(left)
    return prefix
