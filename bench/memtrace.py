"""What grows in the service's memory: ``switchboard serve`` under tracemalloc, for
``python -m bench.soak --tracemalloc``.

``python -m bench.memtrace DIR`` runs the same ``switchboard serve`` as the console script
does (in this process: its PID is the service's), after installing two signal handlers:
SIGUSR2 starts tracing (:data:`FRAMES` frames per allocation; started once the service is
ready, because tracing its start-up — migrations, the classifier's model — makes it take
~40 s), SIGUSR1 collects garbage and dumps a snapshot to ``DIR/snapshot-K.tracemalloc``
(written under another name first, then renamed, so a reader never sees half a file). The
soak starts tracing when the load begins, asks for one snapshot when the flatness window's
middle begins and one at the end of the load; :func:`growth_report` compares them.

Tracemalloc costs CPU and memory of its own, so a traced run's VmRSS is not goal 5's figure:
only the difference between the snapshots, by where the blocks were allocated, is of use.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType

#: Frames kept per allocation.
FRAMES = 16
#: Bound of the wait for the service to write a snapshot it was asked for.
SNAPSHOT_SECONDS = 60.0
#: Growth sites reported, and frames shown for each (newest last).
TOP = 12
SHOWN_FRAMES = 8


def install(directory: Path) -> None:
    """Start tracing on SIGUSR2; dump a snapshot to *directory* on every SIGUSR1."""
    taken = 0

    def start(signum: int, frame: FrameType | None) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        gc.collect()
        target = directory / f"snapshot-{taken}.tracemalloc"
        partial = target.with_suffix(".partial")
        tracemalloc.take_snapshot().dump(str(partial))
        partial.rename(target)

    signal.signal(signal.SIGUSR2, start)
    signal.signal(signal.SIGUSR1, dump)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m bench.memtrace SNAPSHOT_DIR")
    install(Path(argv[0]))
    from router.cli.entry import main as switchboard

    sys.argv = ["switchboard", "serve"]
    switchboard()


def start_tracing(pid: int) -> None:
    os.kill(pid, signal.SIGUSR2)


async def snapshot(pid: int, directory: Path, number: int) -> Path:
    """Ask the traced service *pid* for its snapshot number *number*; its path once written."""
    target = directory / f"snapshot-{number}.tracemalloc"
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + SNAPSHOT_SECONDS
    while not target.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {target.name} from pid {pid} within {SNAPSHOT_SECONDS:g} s")
        await asyncio.sleep(0.1)
    return target


def growth_report(before: Path, after: Path, *, top: int = TOP) -> list[str]:
    """The allocation sites (whole tracebacks) whose live memory grew most between the two
    snapshots, largest first, with their newest frames; tracemalloc's own blocks left out."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(ignore)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(ignore)
    total_old = sum(stat.size for stat in old.statistics("filename"))
    total_new = sum(stat.size for stat in new.statistics("filename"))
    lines = [
        f"traced memory {total_old / 2**20:.1f} MB -> {total_new / 2**20:.1f} MB "
        f"({(total_new - total_old) / 2**20:+.1f} MB); largest growth by allocation site:"
    ]
    for stat in new.compare_to(old, "traceback")[:top]:
        lines.append(
            f"  {stat.size_diff / 2**20:+7.2f} MB  {stat.count_diff:+8,} blocks  "
            f"(now {stat.size / 2**20:.2f} MB in {stat.count:,})"
        )
        for frame in list(stat.traceback)[-SHOWN_FRAMES:]:
            lines.append(f"      {short(frame.filename)}:{frame.lineno}")
    return lines


def short(filename: str) -> str:
    """A path from the package root on (``site-packages/`` and the repository cut off)."""
    for marker in ("site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return filename.removeprefix(root)


if __name__ == "__main__":
    main(sys.argv[1:])
