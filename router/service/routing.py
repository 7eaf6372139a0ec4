"""The routing version a process routes by, and how it follows the database.

A running service keeps the current version in memory (deciding a contact needs no query)
and polls the newest version number every 100 ms, so a change committed by anyone — the
CLI on the database, the API, another replica — is in force here well within a second.
The last version seen is also cached on disk: if the database is down when the service
starts, calls still get a safe ``<Dial>`` to the last-known route (SPEC §7). Replicas may
share that file (one var dir on a shared volume): each writes it under a temporary name of
its own and renames it into place, so a reader sees one whole version or the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from router.core.classify import Classifier, Rule, shipped_classifier, shipped_rules
from router.core.decide import routing_rules
from router.core.document import (
    DocumentInvalid,
    RoutingDocument,
    document_json,
    shipped_document,
    validate_document,
)
from router.service.records import VersionRecord

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ActiveRouting:
    """One routing version, parsed, with the classifier rules it implies and the
    classifier (those rules with the shipped model) that routes by them."""

    version: int
    document: RoutingDocument
    rules: tuple[Rule, ...]
    classifier: Classifier

    @classmethod
    def of(cls, version: int, document: RoutingDocument) -> ActiveRouting:
        rules = routing_rules(shipped_rules(), document)
        return cls(version, document, rules, shipped_classifier(rules))

    @classmethod
    def from_row(cls, row: VersionRecord) -> ActiveRouting:
        return cls.of(row.version, validate_document(json.loads(row.document)))


class RoutingState:
    """The routing this process uses now; swapped as a whole, never edited.

    *observe* is told the version in use at once and after every swap (the
    ``switchboard_routing_version`` gauge), so what is reported is what routes, the
    last-known copy (version 0 for the shipped document) included."""

    def __init__(
        self,
        active: ActiveRouting,
        *,
        from_database: bool,
        observe: Callable[[int], None] = lambda version: None,
    ) -> None:
        self.active = active
        self.from_database = from_database
        self._observe = observe
        self._changed = asyncio.Event()
        observe(active.version)

    def use(self, active: ActiveRouting) -> None:
        previous = self.active.version
        self.active = active
        self.from_database = True
        self._observe(active.version)
        if active.version != previous:
            log.info("routing.loaded", version=active.version, previous=previous)
            # wake everyone waiting, and give later waiters a fresh event
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def wait_for(self, version: int) -> None:
        """Return once this process routes by *version* or a newer one."""
        while self.active.version < version:
            await self._changed.wait()


def cache_path(var_dir: Path) -> Path:
    return var_dir / "last_routing.json"


def remember(active: ActiveRouting, var_dir: Path) -> None:
    """Keep the version on disk for a start while the database is down; best effort.

    Written whole under a name no other process uses, flushed to the disk, then renamed
    over the cache: replicas sharing the var dir never collide on a temporary file, and a
    reader (or a start after a crash) finds the previous version or this one, never part
    of either. A crash leaves at most a stray ``.last_routing.*.tmp``, which nothing reads.
    """
    path = cache_path(var_dir)
    payload = json.dumps({"version": active.version, "document": document_json(active.document)})
    draft: Path | None = None
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=var_dir, prefix=".last_routing.", suffix=".tmp", delete=False
        ) as handle:
            draft = Path(handle.name)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(draft, path)
        draft = None
        _sync_directory(var_dir)
    except OSError as exc:
        log.warning("routing.cache_not_written", path=str(path), error=str(exc))
    finally:
        if draft is not None:
            with contextlib.suppress(OSError):
                draft.unlink()


def _sync_directory(directory: Path) -> None:
    # The rename survives a power cut only once the directory is on disk. Some file systems
    # refuse to sync a directory: the copy is in place all the same, so that is no failure.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def last_known(var_dir: Path) -> ActiveRouting:
    """The cached version, else the shipped document (version 0: never stored)."""
    path = cache_path(var_dir)
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        return ActiveRouting.of(
            int(cached["version"]), validate_document(json.loads(cached["document"]))
        )
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, DocumentInvalid) as exc:
        log.warning("routing.cache_unreadable", path=str(path), error=str(exc))
    return ActiveRouting.of(0, shipped_document())
