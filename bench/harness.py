"""Shared pieces of the benchmarks: server processes, the load generator, statistics, tables.

Rules every benchmark keeps:

* servers run as real processes on 127.0.0.1, never in the load generator's process, so the
  client's work is not billed to the server (nor the other way round);
* whatever the client must compute per request (signatures, bodies) is done before timing;
* a request that does not succeed is an error, counted and reported; a run with errors fails;
* nothing is compared with an absolute time: results are ratios against a baseline measured
  in the same run, with rounds alternated so machine noise hits both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Connections the open-loop (paced) load may hold at once.
PACED_CONNECTIONS = 256
#: Bounds of the wait for a server to answer its readiness URL, and for it to stop.
READY_SECONDS = 30.0
STOP_SECONDS = 15.0


def machine() -> str:
    """The machine a report was measured on, for its heading."""
    return (
        f"{os.cpu_count()} cores (os.cpu_count()), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.machine()}"
    )


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def free_port() -> int:
    """A port free right now on 127.0.0.1 (a server needs its port before it starts: the
    public URL it checks signatures against names it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerFailed(RuntimeError):
    """A server process exited early or did not become ready in time."""


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@asynccontextmanager
async def server_process(
    kind: str,
    *,
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    ready_url: str,
    arguments: Sequence[str] = (),
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``python -m bench.servers KIND`` until the block ends; its output goes to
    *log_path*. Yields once *ready_url* answers 200; stops it with SIGTERM (then SIGKILL)."""
    argv = [sys.executable, "-m", "bench.servers", kind, "--port", str(port), *arguments]
    async with command_process(argv, env=env, log_path=log_path, ready_url=ready_url) as process:
        yield process


def smtp_sink_process(
    work: Path, *, port: int, smtp_port: int
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """``bench.servers smtp-sink``: HTTP on *port* (``/readyz``, ``/received``, ``/reset``,
    chat hand-offs), SMTP on *smtp_port*; its output in ``work/sink.log``."""
    return server_process(
        "smtp-sink",
        port=port,
        env=clean_environment(),
        log_path=work / "sink.log",
        ready_url=f"http://127.0.0.1:{port}/readyz",
        arguments=["--smtp-port", str(smtp_port)],
    )


@asynccontextmanager
async def command_process(
    argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, ready_url: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run the server command *argv* (e.g. the installed ``switchboard serve``) until the
    block ends, as :func:`server_process` does."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            await wait_ready(process, ready_url, log_path)
            yield process
        finally:
            await stop(process)


async def wait_ready(process: asyncio.subprocess.Process, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise ServerFailed(
                    f"{url}: server exited with {process.returncode}:\n{log_tail(log_path)}"
                )
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise ServerFailed(f"{url}: not ready within {READY_SECONDS:.0f} s:\n{log_tail(log_path)}")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """The load every request/response benchmark applies (flags of ``bench.run``)."""

    requests: int = 3000
    warmup: int = 200
    concurrency: int = 16
    rounds: int = 3
    #: routing changes per path (CLI, HTTP API) in ``rollback-propagation``
    flips: int = 50
    #: ``replicas``: routing changes from the CLI, each timed until all three replicas use it
    replica_flips: int = 20
    #: ``email``: timed emails per server, split over the rounds (20 KB each, and every one
    #: is delivered afterwards: fewer than ``requests`` keep the benchmark near a minute)
    emails: int = 2000
    #: ``email``: untimed emails per server before the rounds
    email_warmup: int = 100
    #: ``scaling``: stored interactions to measure at (the smallest is the reference)
    scaling_sizes: tuple[int, ...] = (10_000, 1_000_000)
    #: ``scaling``: timed sequential calls, and as many emails, per size
    scaling_calls: int = 300
    #: ``sizing``: contacts of the generated day
    sizing_interactions: int = 1_000_000


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One POST, encoded (and signed) before timing starts."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(slots=True)
class LoadResult:
    """What one load run saw. Latencies (seconds, sorted) are of successful requests only."""

    label: str
    seconds: float
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    #: CPU (user + system, all threads) the server process and this process spent meanwhile;
    #: None where the server's CPU cannot be read (no /proc).
    server_cpu_seconds: float | None = None
    client_cpu_seconds: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000.0

    @property
    def server_cpu_ms(self) -> float:
        """Server CPU per successful request, in ms; NaN when unknown."""
        if self.server_cpu_seconds is None or not self.ok:
            return math.nan
        return self.server_cpu_seconds * 1000.0 / self.ok

    @property
    def client_cpu_ms(self) -> float:
        """Load generator CPU per successful request, in ms; NaN when nothing succeeded."""
        return self.client_cpu_seconds * 1000.0 / self.ok if self.ok else math.nan


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process *pid* (all its threads) so far, from
    ``/proc/PID/stat``; None where that does not exist."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # fields after the command name, which is in parentheses and may hold spaces
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds(pids: Sequence[int]) -> float | None:
    """The CPU seconds of every process in *pids* together; None when there are none or one
    cannot be read."""
    seconds = [process_cpu_seconds(pid) for pid in pids]
    if not seconds or any(value is None for value in seconds):
        return None
    return sum(value for value in seconds if value is not None)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile *q* (0 < q <= 100) of an ascending sequence; NaN if empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


async def post_checked(
    session: aiohttp.ClientSession, url: str, request: PreparedRequest, expect: bytes
) -> str | None:
    """POST *request*; None on success (a 200 whose body holds *expect*), else the error."""
    try:
        async with session.post(url, data=request.body, headers=request.headers) as response:
            payload = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__
    if status != 200:
        return f"HTTP {status}"
    return None if expect in payload else "unexpected body"


async def measured(
    send_all: Callable[[float], Awaitable[None]],
    label: str,
    latencies: list[float],
    errors: Counter[str],
    server_pids: Sequence[int],
) -> LoadResult:
    """Run ``send_all(start time)``, which fills *latencies* and *errors*, and measure the
    wall time, this process's CPU and (with *server_pids*) the servers' CPU meanwhile."""
    server_before = processes_cpu_seconds(server_pids)
    client_before = time.process_time()
    started = time.perf_counter()
    await send_all(started)
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    server_after = processes_cpu_seconds(server_pids)
    latencies.sort()
    return LoadResult(
        label=label,
        seconds=seconds,
        latencies=latencies,
        errors=errors,
        server_cpu_seconds=(
            server_after - server_before
            if server_before is not None and server_after is not None
            else None
        ),
        client_cpu_seconds=client_cpu,
    )


async def paced(
    session: aiohttp.ClientSession,
    url: str,
    requests: Sequence[PreparedRequest],
    *,
    rate: float,
    label: str,
    expect: bytes,
    server_pid: int | None = None,
) -> LoadResult:
    """POST *requests* at a fixed *rate* per second whatever the answers do (an open loop,
    as providers call: a slow answer does not slow the next caller down).

    Each latency runs from the moment the request was due, not from when it was sent, so a
    stall that delays the requests behind it counts against all of them (no coordinated
    omission)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one(request: PreparedRequest, due: float) -> None:
        error = await post_checked(session, url, request, expect)
        if error is None:
            latencies.append(time.perf_counter() - due)
        else:
            errors[error] += 1

    async def send_all(started: float) -> None:
        tasks = []
        for index, request in enumerate(requests):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(request, due)))
        await asyncio.gather(*tasks)

    return await measured(send_all, label, latencies, errors, pids_of(server_pid))


def pids_of(server_pid: int | None) -> list[int]:
    return [] if server_pid is None else [server_pid]


async def drive(
    session: aiohttp.ClientSession,
    url: str,
    requests: Sequence[PreparedRequest],
    *,
    concurrency: int,
    label: str,
    expect: bytes,
    server_pid: int | None = None,
) -> LoadResult:
    """POST every request in *requests* to *url* from *concurrency* workers, each sending
    its next request as soon as the previous one is answered (a closed loop).

    Success is a 200 whose body contains *expect*; anything else is an error, by kind.
    With *server_pid*, the server process's CPU time over the run is measured too."""
    return await drive_spread(
        session,
        [url],
        requests,
        concurrency=concurrency,
        label=label,
        expect=expect,
        server_pids=pids_of(server_pid),
    )


async def drive_spread(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    requests: Sequence[PreparedRequest],
    *,
    concurrency: int,
    label: str,
    expect: bytes,
    server_pids: Sequence[int] = (),
) -> LoadResult:
    """:func:`drive` over several replicas: request *i* goes to ``urls[i % len(urls)]``
    (round robin, as a load balancer without affinity would), and the CPU time of every
    process in *server_pids* is summed."""
    if not urls:
        raise ValueError("no urls")
    pending: Iterator[tuple[int, PreparedRequest]] = enumerate(requests)
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def worker() -> None:
        # one shared iterator: asyncio hands it to one worker at a time
        for index, request in pending:
            started = time.perf_counter()
            error = await post_checked(session, urls[index % len(urls)], request, expect)
            if error is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors[error] += 1

    async def send_all(started: float) -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    return await measured(send_all, label, latencies, errors, server_pids)


def median_round(rounds: Sequence[LoadResult]) -> LoadResult:
    """The round with the median throughput (the lower middle one for an even count)."""
    if not rounds:
        raise ValueError("no rounds")
    ordered = sorted(rounds, key=lambda result: result.rps)
    return ordered[(len(ordered) - 1) // 2]


# -- reporting ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal of issue #14 as a benchmark measured it: the figure, what it was measured
    against in the same run, the target and whether the figure meets it."""

    key: str  # "1", "1 p99", "4 CLI", …: the goal number, then the part
    figure: str
    baseline: str
    target: str
    met: bool


@dataclass(slots=True)
class Section:
    """One benchmark's report: a table, notes under it, failed checks (if any), and the
    goals it measured (gathered into one table at the end of ``make bench``)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"## {self.title}", "", markdown_table(self.headers, self.rows), ""]
        lines += self.notes
        lines += [f"FAILED: {failure}" for failure in self.failures]
        return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A pipe table, columns padded so it also reads well in a terminal."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (width + 1) + ("-" if index == 0 else ":") for index, width in enumerate(widths)
    )
    return "\n".join([line(headers), rule + "|", *(line(row) for row in rows)])


# -- one server against the other, side by side ------------------------------------------------

SWITCHBOARD, BARE = "switchboard", "bare aiohttp"


def clean_environment() -> dict[str, str]:
    """This process's environment without any Switchboard or Twilio setting of the caller's."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SWITCHBOARD_", "TWILIO_"))
    }


CUSTOMER_KEY_SECRET = "bench-customer-key-secret-0123456789"


def switchboard_environment(work: Path, base: str, **settings: str) -> dict[str, str]:
    """Switchboard's settings for a benchmark run in *work* (SQLite file ``switchboard.db``,
    JSON logs) called at *base*, plus *settings* (``TWILIO_AUTH_TOKEN=…``)."""
    return {
        **clean_environment(),
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'switchboard.db'}",
        "SWITCHBOARD_VAR_DIR": str(work / "var"),
        "SWITCHBOARD_PUBLIC_URL": base,
        "SWITCHBOARD_LOG_FORMAT": "json",
        "SWITCHBOARD_CUSTOMER_KEY_SECRET": CUSTOMER_KEY_SECRET,
        **settings,
    }


#: (side, url, first, count) -> the requests numbered first … first+count-1 of that side;
#: called just before each load, outside the timed part
Prepare = Callable[[str, str, int, int], Sequence[PreparedRequest]]


@dataclass(slots=True)
class SideBySide:
    """What both sides saw: the timed rounds, every error, every success (warm-up too)."""

    rounds: dict[str, list[LoadResult]]
    errors: dict[str, Counter[str]]
    ok: Counter[str]
    #: the open-loop run of each side at :attr:`paced_rate` (empty when none was asked for)
    paced: dict[str, LoadResult] = field(default_factory=dict)
    paced_rate: float = 0.0
    #: Switchboard alone, open loop at each further share of its median round rate: how
    #: its latency grows with the load (share, result), in the order run
    curve: list[tuple[float, LoadResult]] = field(default_factory=list)


async def side_by_side(
    work: Path,
    options: LoadOptions,
    *,
    path: str,
    switchboard_env: Callable[[str], Mapping[str, str]],
    prepare: Prepare,
    expect: bytes,
    warmup: int,
    sizes: Sequence[int],
    paced_requests: int = 0,
    paced_share: float = 0.5,
    curve_shares: Sequence[float] = (),
) -> SideBySide:
    """Start Switchboard (environment from ``switchboard_env(base_url)``, log in
    ``work/switchboard.log``) and the bare aiohttp server, each with its own client session;
    warm both up with *warmup* requests, then run ``len(sizes)`` rounds, alternating which
    side goes first so drift within a round hits both alike.

    With *paced_requests*, both sides then get that many more requests in an open loop at
    *paced_share* of Switchboard's median round rate: the latency a provider sees at that
    load, measured against the bare server at the same rate. Switchboard alone then gets
    *paced_requests* more at each of *curve_shares* (``prepare`` must have as many)."""
    sb_port, bare_port = free_port(), free_port()
    bases = {SWITCHBOARD: f"http://127.0.0.1:{sb_port}", BARE: f"http://127.0.0.1:{bare_port}"}
    seen = SideBySide(
        rounds={SWITCHBOARD: [], BARE: []},
        errors={SWITCHBOARD: Counter(), BARE: Counter()},
        ok=Counter(),
    )

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=options.concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )

    async with (
        server_process(
            "switchboard",
            port=sb_port,
            env=switchboard_env(bases[SWITCHBOARD]),
            log_path=work / "switchboard.log",
            ready_url=bases[SWITCHBOARD] + "/readyz",
        ) as sb_process,
        server_process(
            "bare",
            port=bare_port,
            env=clean_environment(),
            log_path=work / "bare.log",
            ready_url=bases[BARE] + "/readyz",
        ) as bare_process,
        session() as sb_session,
        session() as bare_session,
    ):
        sides = {SWITCHBOARD: (sb_session, sb_process.pid), BARE: (bare_session, bare_process.pid)}

        async def load(side: str, first: int, count: int, label: str) -> LoadResult:
            client, pid = sides[side]
            url = bases[side] + path
            result = await drive(
                client,
                url,
                prepare(side, url, first, count),
                concurrency=options.concurrency,
                label=label,
                expect=expect,
                server_pid=pid,
            )
            seen.errors[side] += result.errors
            seen.ok[side] += result.ok
            return result

        for side in (SWITCHBOARD, BARE):
            await load(side, 0, warmup, "warm-up")
        first = warmup
        for index, size in enumerate(sizes):
            order = (SWITCHBOARD, BARE) if index % 2 == 0 else (BARE, SWITCHBOARD)
            for side in order:
                seen.rounds[side].append(await load(side, first, size, f"round {index + 1}"))
            first += size

        async def open_loop(side: str, first: int, rate: float) -> LoadResult:
            url = bases[side] + path
            # as many connections as callers in flight: a queue in the client would show as
            # the server's latency
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=PACED_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as client:
                result = await paced(
                    client,
                    url,
                    prepare(side, url, first, paced_requests),
                    rate=rate,
                    label=f"paced at {rate:,.0f}/s",
                    expect=expect,
                    server_pid=sides[side][1],
                )
            seen.errors[side] += result.errors
            seen.ok[side] += result.ok
            return result

        if paced_requests:
            median_rps = median_round(seen.rounds[SWITCHBOARD]).rps
            seen.paced_rate = median_rps * paced_share
            for side in (SWITCHBOARD, BARE):
                seen.paced[side] = await open_loop(side, first, seen.paced_rate)
            for index, share in enumerate(curve_shares, start=1):
                result = await open_loop(
                    SWITCHBOARD, first + index * paced_requests, median_rps * share
                )
                seen.curve.append((share, result))
    return seen
