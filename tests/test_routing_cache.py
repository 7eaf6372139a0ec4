"""The last-known routing on disk (issue #18): replicas sharing a var dir write it at once
and a reader never sees a torn or missing file; a crash's leftovers break nothing; and the
version reported is the one in use from the first moment.

Real files and real threads: two writers (as two replicas on one shared volume) replace
the cache many times while a third thread reads it the way a starting replica does."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import structlog

from router.core.document import document_json, shipped_document, validate_document
from router.service.routing import ActiveRouting, RoutingState, cache_path, last_known, remember

from .conftest import shipped_data

WRITES_PER_WRITER = 150


def routing_with_prompt(version: int, prompt: str) -> ActiveRouting:
    """The shipped document at *version* with an English prompt of its own: two of them
    differ in length and content, so a reader would notice a mix or a cut."""
    data: dict[str, Any] = shipped_data()
    data["ivr"]["prompts"]["en-US"] = prompt
    return ActiveRouting.of(version, validate_document(data))


def test_two_writers_and_a_reader_never_meet_a_torn_or_missing_file(tmp_path: Path) -> None:
    long_one = routing_with_prompt(41, "Press one for orders. " * 400)
    short_one = routing_with_prompt(42, "Press one.")
    expected = {
        41: document_json(long_one.document),
        42: document_json(short_one.document),
    }
    remember(short_one, tmp_path)  # there is a cache before the race begins
    done = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def write(active: ActiveRouting) -> None:
        for _ in range(WRITES_PER_WRITER):
            remember(active, tmp_path)

    def read() -> None:
        while not done.is_set():
            try:
                cached = json.loads(cache_path(tmp_path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(repr(exc))
                continue
            if expected.get(cached["version"]) != cached["document"]:
                problems.append(f"version {cached['version']} with another document")
            seen.append(cached["version"])

    with structlog.testing.capture_logs() as logs:
        reader = threading.Thread(target=read)
        writers = [threading.Thread(target=write, args=(a,)) for a in (long_one, short_one)]
        reader.start()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        done.set()
        reader.join()

    assert problems == []
    assert seen and set(seen) <= {41, 42}
    assert [entry for entry in logs if entry["event"] == "routing.cache_not_written"] == []
    # every writer's temporary file was renamed away: nothing is left beside the cache
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last_routing.json"]
    assert last_known(tmp_path).version in (41, 42)


def test_a_crash_s_leftovers_neither_stop_a_write_nor_are_read(tmp_path: Path) -> None:
    # what a writer killed mid-way leaves: a half-written draft under the new naming, and the
    # old fixed temporary name taken by something that cannot be written over
    (tmp_path / ".last_routing.k2j3h4.tmp").write_text('{"version": 99, "docu', "utf-8")
    (tmp_path / "last_routing.tmp").mkdir()
    remember(routing_with_prompt(7, "Press one."), tmp_path)

    assert last_known(tmp_path).version == 7
    assert json.loads(cache_path(tmp_path).read_text("utf-8"))["version"] == 7


def test_a_cache_that_cannot_be_written_is_logged_and_leaves_no_draft(tmp_path: Path) -> None:
    # a directory where the cache belongs: the rename fails after the draft was written
    blocked = tmp_path / "blocked"
    cache_path(blocked).mkdir(parents=True)
    with structlog.testing.capture_logs() as logs:
        remember(routing_with_prompt(8, "Press one."), blocked)

    assert [entry["event"] for entry in logs] == ["routing.cache_not_written"]
    assert [path.name for path in blocked.iterdir()] == ["last_routing.json"]


def test_the_version_in_use_is_reported_from_the_start_and_after_every_swap(
    tmp_path: Path,
) -> None:
    reported: list[int] = []
    shipped = RoutingState(last_known(tmp_path), from_database=False, observe=reported.append)
    assert shipped.active.version == 0  # nothing cached: the shipped document, never stored
    assert shipped.active.document == shipped_document()
    shipped.use(routing_with_prompt(3, "Press one."))

    remember(routing_with_prompt(21, "Press one."), tmp_path)
    cached = RoutingState(last_known(tmp_path), from_database=False, observe=reported.append)
    assert cached.active.version == 21

    assert reported == [0, 3, 21]
