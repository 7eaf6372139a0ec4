"""The held-out sets the classifier is judged on, pinned by hash so that nobody tunes to
them unnoticed: changing a pinned file fails here, on purpose.

``classifier_blind.jsonl`` (420 messages, 60 per language, 30 % product) was written by a
helper who saw neither the rules nor the code nor any training data, and was committed
before the model was trained or any rule changed after it. It is used for nothing but
these figures: no rule, feature or setting is chosen by looking at it.

``classifier_blind2.jsonl`` (420 messages, 60 per language, 30 % product) is a second one,
written the same way by another helper on 2026-12-06 with a brief that asked for indirect
wording (a quarter of the admin messages without the obvious words) and each country's own
carriers and payment methods; it was committed and scored once, with the shipped model and
rules unchanged, and nothing has been tuned on it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from router.core.classify import (
    EvalReport,
    evaluate,
    parse_examples,
    render_report,
    shipped_classifier,
)
from router.core.classify_lang import LANGUAGES
from router.core.contact import Category
from router.core.document import shipped_document

DATA = Path(__file__).parent / "data"
BLIND = DATA / "classifier_blind.jsonl"
BLIND_SHA256 = "a1ac7b00c176ff2d78f0568f8acf7264c2ec18687a54bb7d5af493331a89d664"
BLIND2 = DATA / "classifier_blind2.jsonl"
BLIND2_SHA256 = "f472c8c3dbe9bf5f7befce45d37db07406d9c7069741b0a40b7fc5a4b4e18dae"


@pytest.mark.parametrize(("path", "digest"), [(BLIND, BLIND_SHA256), (BLIND2, BLIND2_SHA256)])
def test_the_blind_sets_are_the_ones_committed(path: Path, digest: str) -> None:
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    examples = parse_examples(path.read_text(encoding="utf-8").splitlines())
    counts = Counter((e.lang, e.label.value) for e in examples)
    assert counts == {
        (lang, label): n for lang in LANGUAGES for label, n in (("admin", 42), ("product", 18))
    }


def blind_report(path: Path = BLIND) -> EvalReport:
    classifier = shipped_classifier()
    threshold = shipped_document().classifier.min_confidence
    return evaluate(
        parse_examples(path.read_text(encoding="utf-8").splitlines()),
        lambda text, lang: classifier.classify(text, lang, min_confidence=threshold),
    )


def test_the_shipped_classifier_on_the_blind_set() -> None:
    """Regression floors at what the shipped model reaches, not the goal: issue #12 asks
    for 95 % accuracy and 90 % product recall on messages nobody on the team wrote. The
    README has the full figures and where they fall short."""
    report = blind_report()
    text = render_report(report)
    assert report.accuracy is not None and report.accuracy >= 0.875, text
    assert report.categories()["product"]["recall"] >= 0.95, text
    assert report.categories()["admin"]["precision"] >= 0.97, text
    unknown = sum(r.category is Category.UNKNOWN for r in report.results)
    assert unknown <= 0.05 * report.total, text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_blind_set_per_language(lang: str) -> None:
    stats = blind_report().languages()[lang]
    assert stats["accuracy"] >= 0.75, stats
    assert stats["categories"]["product"]["recall"] >= 0.85, stats


def test_the_shipped_classifier_on_the_second_blind_set() -> None:
    """Floors at what the shipped model reached when the set was first scored (91.9 %)."""
    report = blind_report(BLIND2)
    text = render_report(report)
    assert report.accuracy is not None and report.accuracy >= 0.915, text
    assert report.categories()["product"]["recall"] >= 0.93, text
    assert report.categories()["admin"]["precision"] >= 0.975, text
    for lang, stats in report.languages().items():
        assert stats["accuracy"] >= 0.84, (lang, text)
