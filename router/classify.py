"""The text classifier: is a message an administrative contact or a product question?

A first, deliberately simple keyword classifier behind the interface the rest of the code
uses (:func:`classify` returning a :class:`Classification`). Rules are data: weighted word
stems per category, shipped in ``config/classifier/keywords.yaml`` and extended by the
routing document's ``classifier.rules``. Matching is done on folded text (lower case, no
diacritics) so "objednávka", "OBJEDNAVKA" and "objednavku" all hit the stem "objednav".

Pure: no I/O here; loading the shipped rules is the caller's job (:func:`load_rules`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from router.contact import Category, CategorySource

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Rule:
    """A folded word stem or phrase that votes for *category* with *weight*."""

    phrase: str
    category: Category
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: str
    category: Category
    weight: float


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    confidence: float
    source: CategorySource
    matches: tuple[RuleMatch, ...] = ()

    @property
    def rule(self) -> str | None:
        """The strongest matching rule, stored with the interaction."""
        if not self.matches:
            return None
        return max(self.matches, key=lambda m: m.weight).rule


def fold(text: str) -> str:
    """Lower-case *text* and strip diacritics ("Objednávka" -> "objednavka")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _words(folded: str) -> list[str]:
    return _WORD.findall(folded)


def classify(text: str, rules: Iterable[Rule], *, min_confidence: float = 0.0) -> Classification:
    """Classify *text*: each rule whose stem starts a word (or whose phrase occurs) adds its
    weight to its category; the heavier category wins, confidence is its share of the total.
    A tie, no match or a confidence below *min_confidence* gives ``unknown``."""
    folded = fold(text)
    words = _words(folded)
    joined = " " + " ".join(words) + " "
    matches: list[RuleMatch] = []
    for rule in rules:
        if " " in rule.phrase:
            # a phrase's last word is a stem too: "how do i" matches "how do i …"
            hit = f" {rule.phrase}" in joined
        else:
            hit = any(word.startswith(rule.phrase) for word in words)
        if hit:
            matches.append(RuleMatch(rule.phrase, rule.category, rule.weight))
    totals = {Category.ADMIN: 0.0, Category.PRODUCT: 0.0}
    for match in matches:
        if match.category in totals:
            totals[match.category] += match.weight
    total = sum(totals.values())
    if total <= 0:
        return Classification(Category.UNKNOWN, 0.0, CategorySource.TEXT, tuple(matches))
    winner = max(totals, key=lambda c: totals[c])
    confidence = totals[winner] / total
    if totals[Category.ADMIN] == totals[Category.PRODUCT] or confidence < min_confidence:
        return Classification(Category.UNKNOWN, confidence, CategorySource.TEXT, tuple(matches))
    return Classification(winner, round(confidence, 4), CategorySource.TEXT, tuple(matches))


def rules_from_data(data: Mapping[str, object]) -> tuple[Rule, ...]:
    """Rules from the shipped keyword file's shape: ``{admin: {stem: weight}, product: …}``."""
    rules: list[Rule] = []
    for category in (Category.ADMIN, Category.PRODUCT):
        entries = data.get(category.value) or {}
        if not isinstance(entries, Mapping):
            raise ValueError(f"{category.value}: expected a map of stem to weight")
        for phrase, weight in entries.items():
            rules.append(Rule(fold(str(phrase)), category, float(weight)))
    return tuple(rules)


@cache
def load_rules(path: Path) -> tuple[Rule, ...]:
    """The shipped rules in *path* (read once per process)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a map with 'admin' and 'product'")
    return rules_from_data(data)
