"""``make bench``: run the registered benchmarks and print one report.

Each benchmark is an async function from the load options to a :class:`Section`; add one by
writing it in its own module under ``bench/`` and registering it in :data:`BENCHMARKS`.
The exit code is 1 when any benchmark's checks failed (failed requests, lost records):
figures from such a run mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import classify, email, replicas, rollback, scaling, sizing, soak, sync_commit, webhook
from bench.harness import (
    LoadOptions,
    Section,
    ServerFailed,
    machine,
    markdown_table,
    positive,
)


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    summary: str
    run: Callable[[LoadOptions], Awaitable[Section]]
    #: the goals of issue #14 it measures ("" for none)
    goals: str = ""
    #: run by ``make bench`` without ``--only`` (the soak takes 10 minutes: ``make soak``)
    default: bool = True


BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in [
        Benchmark(
            "voice-route",
            "signed Twilio Gather -> real service on SQLite (one durable insert per request) "
            "vs a bare aiohttp form handler",
            webhook.voice_route,
            goals="1",
        ),
        Benchmark(
            "rollback-propagation",
            "CLI / HTTP API rollback and resume -> first call routed by the new version in a "
            "running service (p50/p99 over --flips flips each)",
            rollback.rollback_propagation,
            goals="4",
        ),
        Benchmark(
            "email",
            "signed 20 KB raw emails -> real service on SQLite (interaction + outbox row per "
            "email) vs a bare aiohttp handler reading the body; then the outbox delivered to "
            "an aiosmtpd sink vs aiosmtplib sending the same messages (--emails per server)",
            email.email_benchmark,
            goals="2, 3",
        ),
        Benchmark(
            "classify",
            "text classifier on 300-character messages, classifications/s on one core vs "
            "str.lower().split()",
            classify.classify,
        ),
        Benchmark(
            "scaling",
            "routing cost per call (/route, email replies) and GET /api/status, /api/report, "
            "/api/traffic at 10k and 1M stored interactions (--scaling-sizes); flat and <= 1 s",
            scaling.scaling,
            goals="6",
        ),
        Benchmark(
            "sync-commit",
            "signed Twilio Gathers -> real service on PostgreSQL with a streaming standby, "
            "synchronous vs asynchronous in alternating rounds; and one connection's commits",
            sync_commit.sync_commit,
        ),
        Benchmark(
            "replicas",
            "signed /route on 1 SQLite process, 1 and 3 PostgreSQL replicas (round robin): "
            "rps, CPU per call (serve, PostgreSQL), statements per call; CLI rollback/resume "
            "-> every replica p50/max (--replica-flips)",
            replicas.replicas,
        ),
        Benchmark(
            "sizing",
            "one generated day of --sizing-interactions contacts (calls, emails, chats with "
            "their replies, forwards and attempts) on PostgreSQL and SQLite: rows, heap, index "
            "and total bytes per table and per contact (only with --only sizing)",
            sizing.sizing,
            default=False,
        ),
        Benchmark(
            "soak",
            "10 minutes of mixed load on one service: its resident memory curve (only with "
            "--only soak; `make soak` has more options)",
            soak.soak_benchmark,
            goals="5",
            default=False,
        ),
    ]
}


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def sizes(text: str) -> tuple[int, ...]:
    try:
        return scaling.parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = LoadOptions()
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Side-by-side benchmarks of Switchboard; prints rps, latency and ratios.",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help="run only this benchmark (repeatable); see --list",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--requests",
        type=positive,
        default=defaults.requests,
        help="timed requests per server per round (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=non_negative,
        default=defaults.warmup,
        help="untimed requests per server before the rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=defaults.concurrency,
        help="requests in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=positive,
        default=defaults.rounds,
        help="alternating rounds per server; the median one is reported (default: %(default)s)",
    )
    parser.add_argument(
        "--flips",
        type=positive,
        default=defaults.flips,
        help="rollback-propagation: routing changes per path, CLI and HTTP API "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--replica-flips",
        type=positive,
        default=defaults.replica_flips,
        help="replicas: CLI routing changes timed until every replica uses them "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--emails",
        type=positive,
        default=defaults.emails,
        help="email: timed emails per server, split over the rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--email-warmup",
        type=non_negative,
        default=defaults.email_warmup,
        help="email: untimed emails per server before the rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--scaling-sizes",
        type=sizes,
        default=defaults.scaling_sizes,
        metavar="N,N,...",
        help="scaling: stored interactions to measure at, the smallest is the reference "
        f"(default: {','.join(str(size) for size in defaults.scaling_sizes)})",
    )
    parser.add_argument(
        "--scaling-calls",
        type=positive,
        default=defaults.scaling_calls,
        help="scaling: timed calls, and as many emails, per size (default: %(default)s)",
    )
    parser.add_argument(
        "--sizing-interactions",
        type=positive,
        default=defaults.sizing_interactions,
        help="sizing: contacts of the generated day (default: %(default)s)",
    )
    return parser.parse_args(argv)


async def run_all(names: list[str], options: LoadOptions) -> list[Section]:
    return [await BENCHMARKS[name].run(options) for name in names]


def goals_table(sections: list[Section], names: list[str]) -> str:
    """Every goal of issue #14 the run measured, with its figure, baseline and verdict, and
    a line for each goal whose benchmark did not run."""
    rows = [
        [goal.key, goal.figure, goal.baseline, goal.target, "met" if goal.met else "not met"]
        for section in sections
        for goal in section.goals
    ]
    rows.sort(key=lambda row: row[0])
    skipped = [
        [
            benchmark.goals,
            "not run",
            "",
            f"--only {benchmark.name}" if benchmark.default else f"make {benchmark.name}",
            "",
        ]
        for benchmark in BENCHMARKS.values()
        if benchmark.goals and benchmark.name not in names
    ]
    met = sum(row[4] == "met" for row in rows)
    return "\n".join(
        [
            "## goals of issue #14",
            "",
            markdown_table(
                ["goal", "figure", "baseline (same run)", "target", "verdict"],
                rows + sorted(skipped),
            ),
            "",
            f"{met} of {len(rows)} measured goals met.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for benchmark in BENCHMARKS.values():
            print(f"{benchmark.name}: {benchmark.summary}")
        return 0
    options = LoadOptions(
        requests=args.requests,
        warmup=args.warmup,
        concurrency=args.concurrency,
        rounds=args.rounds,
        flips=args.flips,
        replica_flips=args.replica_flips,
        emails=args.emails,
        email_warmup=args.email_warmup,
        scaling_sizes=args.scaling_sizes,
        scaling_calls=args.scaling_calls,
        sizing_interactions=args.sizing_interactions,
    )
    names = (
        list(dict.fromkeys(args.only))
        if args.only
        else [name for name, benchmark in BENCHMARKS.items() if benchmark.default]
    )
    print(f"# Switchboard benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print()
    try:
        sections = asyncio.run(run_all(names, options))
    except ServerFailed as exc:
        print(f"a server under test failed: {exc}", file=sys.stderr)
        return 1
    for section in sections:
        print(section.render())
        print()
    print(goals_table(sections, names))
    print()
    failed = [section.title for section in sections if section.failures]
    if failed:
        print(f"{len(failed)} benchmark(s) failed their checks", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
