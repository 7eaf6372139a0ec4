"""The routing version a process routes by, and how it follows the database.

A running service keeps the current version in memory (deciding a contact needs no query)
and polls the newest version number every 100 ms, so a change committed by anyone — the
CLI on the database, the API, another replica — is in force here well within a second.
The last version seen is also cached on disk: if the database is down when the service
starts, calls still get a safe ``<Dial>`` to the last-known route (SPEC §7).
"""

from __future__ import annotations

import asyncio
import json
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
    """The routing this process uses now; swapped as a whole, never edited."""

    def __init__(self, active: ActiveRouting, *, from_database: bool) -> None:
        self.active = active
        self.from_database = from_database
        self._changed = asyncio.Event()

    def use(self, active: ActiveRouting) -> None:
        previous = self.active.version
        self.active = active
        self.from_database = True
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
    """Keep the version on disk for a start while the database is down; best effort."""
    path = cache_path(var_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"version": active.version, "document": document_json(active.document)}),
            encoding="utf-8",
        )
        temporary.replace(path)
    except OSError as exc:
        log.warning("routing.cache_not_written", path=str(path), error=str(exc))


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
