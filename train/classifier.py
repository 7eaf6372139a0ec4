"""Train the classifier's model (``make train-classifier``) and report how it generalises.

Reads labelled messages (JSON lines ``{"text", "label", "lang", "source", "id"}``) from a data
directory, checks every file against the directory's ``MANIFEST.json`` (its SHA-256 pins the
data, so a model is rebuilt from exactly the messages it was built from), splits off the
held-out share (a fixed rule on each message's source and id, :func:`is_held_out`, decided
before any training), and fits a logistic regression over the features that
:mod:`router.core.classify_model` defines, with the shipped rules' evidence as two more inputs.

It prints and writes (``REPORT.md`` beside the model) the held-out figures per language and
per source, and the cross-source figures: for each source, a model trained without it,
tested on it. The model is written deterministically (sorted keys, gzip without a time
stamp): the same data gives the same bytes.

Training needs numpy, scipy and scikit-learn (the ``train`` extra); serving needs none of them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from router.core.classify import (
    Classifier,
    EvalReport,
    EvalResult,
    Example,
    compile_rules,
    evaluate,
    rules_digest,
    shipped_rules,
    words,
)
from router.core.classify_model import (
    SIGNALS,
    TextModel,
    combine,
    model_data,
    signals,
    word_features,
)
from router.core.contact import Category

#: The share of every source kept out of training, chosen by a hash of (source, id).
HELD_OUT_SHARE = 0.2
#: A feature must occur in at least this many training messages to get a weight.
MIN_DOCUMENTS = 2
#: Inverse regularisation strength of the logistic regression.
C = 1.0
#: Weights smaller than this are dropped from the shipped model (they change no decision).
MIN_WEIGHT = 1e-3
#: A source of n messages weighs n ** SOURCE_POWER in training (1: every message the same).
SOURCE_POWER = 0.3
#: A language with this many training messages is fully covered: its messages are scored
#: by the words and the signals; with fewer, the signals alone weigh in proportionally.
COVERED_AT = 500
#: How far the words are trusted in a fully covered language (the rest: the signals alone).
TRUST = 0.5
LABELS = ("admin", "product")


@dataclass(frozen=True, slots=True)
class Message:
    text: str
    label: str
    lang: str
    source: str
    id: str
    use: str = "train"  # train | test (no licence to train on: only scored against)

    @property
    def product(self) -> bool:
        return self.label == "product"


def is_held_out(source: str, ident: str) -> bool:
    """Whether a message belongs to the held-out set: fixed by its source and id alone, so
    adding data never moves a message between training and evaluation."""
    digest = hashlib.sha256(f"{source}\0{ident}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELD_OUT_SHARE


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_messages(directory: Path, manifest_path: Path | None = None) -> list[Message]:
    """Every message of the data files that *manifest_path* lists (paths relative to
    *directory*), each checked against its SHA-256; without a manifest, every ``*.jsonl``
    under *directory*. In a stable order."""
    if manifest_path is not None:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = [
            (directory / entry["path"], entry["sha256"], entry.get("use", "train"))
            for entry in manifest["files"]
        ]
        for path, expected, _ in files:
            if not path.is_file():
                raise SystemExit(f"{path}: listed in {manifest_path} but missing")
            actual = file_digest(path)
            if actual != expected:
                raise SystemExit(f"{path}: SHA-256 {actual}, the manifest pins {expected}")
        paths = [(path, use) for path, _, use in files]
    else:
        paths = [
            (path, "test" if path.parent.name == "test" else "train")
            for path in sorted(directory.rglob("*.jsonl"))
        ]
    messages: list[Message] = []
    seen: set[tuple[str, str]] = set()
    for path, use in paths:
        if use not in ("train", "test"):
            raise SystemExit(f"{path}: use {use!r}: expected train or test")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if item.get("label") not in LABELS:
                raise SystemExit(f"{path}:{number}: label must be admin or product")
            key = (str(item["source"]), str(item["id"]))
            if key in seen:
                raise SystemExit(f"{path}:{number}: id {key} appears twice")
            seen.add(key)
            messages.append(
                Message(item["text"], item["label"], item.get("lang") or "?", *key, use)
            )
    return messages


# -- features ---------------------------------------------------------------------------------


class Featurizer:
    """Turns messages into the model's inputs: counts of word features plus the rules'
    evidence, divided by the square root of the number of words (see classify_model)."""

    def __init__(self, rules: Classifier) -> None:
        self.rules = rules
        self._cache: dict[str, Counter[str]] = {}

    def counts(self, text: str) -> tuple[Counter[str], list[str]]:
        """The word features of *text* with their counts, and its words."""
        total: Counter[str] = Counter()
        found = words(text)
        for word in found:
            cached = self._cache.get(word)
            if cached is None:
                cached = self._cache[word] = Counter(word_features(word))
            total.update(cached)
        return total, found

    def matrix(self, messages: Sequence[Message], vocabulary: dict[str, int]) -> sparse.csr_matrix:
        """Rows of features; the last columns are the signals (classify_model.SIGNALS)."""
        rows, cols, values = [], [], []
        width = len(vocabulary)
        for row, message in enumerate(messages):
            counts, found = self.counts(message.text)
            if not found:
                continue
            root = math.sqrt(len(found))
            for feature, count in counts.items():
                column = vocabulary.get(feature)
                if column is not None:
                    rows.append(row)
                    cols.append(column)
                    values.append(count / root)
            values_of = signals(*self.rules.evidence(message.text), len(found))
            for offset, value in enumerate(values_of):
                if value:
                    rows.append(row)
                    cols.append(width + offset)
                    values.append(value / root)
        return sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(messages), width + len(SIGNALS)), dtype=np.float64
        )

    def vocabulary(self, messages: Iterable[Message]) -> dict[str, int]:
        documents: Counter[str] = Counter()
        for message in messages:
            documents.update(self.counts(message.text)[0].keys())
        kept = sorted(f for f, n in documents.items() if n >= MIN_DOCUMENTS)
        return {feature: index for index, feature in enumerate(kept)}


def fit(featurizer: Featurizer, messages: Sequence[Message]) -> TextModel:
    """Both parts of a model fitted to *messages*, uncalibrated (scales 1), with the
    coverage of each language by how many of *messages* are in it."""
    vocabulary = featurizer.vocabulary(messages)
    matrix = featurizer.matrix(messages, vocabulary)
    labels = np.array([m.product for m in messages], dtype=np.int8)
    weights_of = sample_weights(messages)
    width = len(vocabulary)
    full = _logistic().fit(matrix, labels, sample_weight=weights_of).coef_[0]
    alone = _logistic().fit(matrix[:, width:], labels, sample_weight=weights_of).coef_[0]
    weights = {
        feature: float(f"{full[index]:.4g}")
        for feature, index in vocabulary.items()
        if abs(full[index]) >= MIN_WEIGHT
    }
    languages = Counter(m.lang for m in messages)
    return TextModel(
        weights,
        _rounded(full[width:]),
        1.0,
        _rounded(alone),
        1.0,
        {lang: round(TRUST * min(1.0, n / COVERED_AT), 4) for lang, n in sorted(languages.items())},
    )


def sample_weights(messages: Sequence[Message]) -> Any:
    """How much each message counts: a source of n messages weighs n ** SOURCE_POWER in all
    (a big source of one kind of text must not drown the others), and then the two labels
    weigh the same (real traffic is mostly admin, but a product question is no less worth
    getting right)."""
    sizes = Counter(m.source for m in messages)
    raw = np.array([sizes[m.source] ** (SOURCE_POWER - 1.0) for m in messages])
    products = np.array([m.product for m in messages])
    for label in (True, False):
        chosen = products == label
        total = raw[chosen].sum()
        if total:
            raw[chosen] *= len(messages) / (2.0 * total)
    return raw


def _logistic() -> Any:
    return LogisticRegression(C=C, fit_intercept=False, max_iter=2000, solver="lbfgs")


def _rounded(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(f"{value:.4g}") for value in values)


def raw_scores(model: TextModel, rules: Classifier, text: str) -> tuple[float, float]:
    """The uncalibrated scores of *text* by the full part and by the signals part."""
    found = words(text)
    if not found:
        return 0.0, 0.0
    values = signals(*rules.evidence(text), len(found))
    word_total = math.fsum(map(model.word_score, found))
    full, _ = combine(1.0, model.signal_weights, word_total, values, len(found))
    alone, _ = combine(0.0, model.signals_only, 0.0, values, len(found))
    return full, alone


def fit_scale(scores: Sequence[float], products: Sequence[bool]) -> float:
    """The calibration: the factor on *scores* (out-of-fold ``z``) that makes
    ``sigmoid(scale * z)`` the best probability of product (maximum likelihood)."""
    column = np.array(scores, dtype=np.float64).reshape(-1, 1)
    calibration = LogisticRegression(C=1e6, fit_intercept=False, max_iter=1000)
    calibration.fit(column, np.array(products, dtype=np.int8))
    return float(f"{float(calibration.coef_[0][0]):.4g}")


# -- evaluation ---------------------------------------------------------------------------


def score_with(
    model: TextModel, messages: Sequence[Message], min_confidence: float = 0.0
) -> EvalReport:
    """*messages* classified by the shipped rules with *model*, evaluated as
    ``switchboard classify --eval`` does."""
    classifier = compile_rules(shipped_rules(), model)
    examples = [
        Example(m.text, Category(m.label), m.lang, line, m.source)
        for line, m in enumerate(messages, 1)
    ]
    # (classified without the language hint, as routing does for most contacts)
    return evaluate(
        examples, lambda text, _: classifier.classify(text, min_confidence=min_confidence)
    )


def figures(report: EvalReport) -> dict[str, Any]:
    """The figures the training report tabulates."""
    categories = report.categories()
    unknown = sum(r.category is Category.UNKNOWN for r in report.results)
    return {
        "n": report.total,
        "product": categories["product"]["support"],
        "accuracy": report.accuracy,
        "product_recall": categories["product"]["recall"],
        "product_precision": categories["product"]["precision"],
        "admin_recall": categories["admin"]["recall"],
        "unknown": round(unknown / report.total, 4) if report.total else None,
    }


def grouped(report: EvalReport, key: str) -> dict[str, dict[str, Any]]:
    """:func:`figures` per value of the results' *key* (``language`` or ``source``)."""
    groups: dict[str, list[EvalResult]] = defaultdict(list)
    for result in report.results:
        groups[str(getattr(result, key))].append(result)
    return {name: figures(EvalReport(tuple(group))) for name, group in sorted(groups.items())}


def section(title: str, report: EvalReport) -> tuple[dict[str, Any], list[str]]:
    """A report's figures overall, per language and per source, as data and as Markdown."""
    data = {
        "all": figures(report),
        "languages": grouped(report, "language"),
        "sources": grouped(report, "source"),
    }
    lines = [f"## {title}", "", *table("all", {"all": data["all"]}), ""]
    lines += [*table("language", data["languages"]), "", *table("source", data["sources"]), ""]
    return data, lines


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def table(title: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"| {title} | n | product | accuracy | product recall | product precision | unknown |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in rows.items():
        lines.append(
            f"| {name} | {f['n']} | {f['product']} | {_percent(f['accuracy'])} | "
            f"{_percent(f['product_recall'])} | {_percent(f['product_precision'])} | "
            f"{_percent(f['unknown'])} |"
        )
    return lines


# -- the whole run --------------------------------------------------------------------------------


def train(
    messages: Sequence[Message], *, cross_source: bool = True, min_confidence: float = 0.0
) -> tuple[TextModel, list[str], dict[str, Any]]:
    """The model trained on the *messages* for training less the held-out ones, and the
    report (held out, test-only sources, cross-source)."""
    featurizer = Featurizer(compile_rules(shipped_rules()))
    trainable = [m for m in messages if m.use == "train"]
    test_only = [m for m in messages if m.use == "test"]
    training = [m for m in trainable if not is_held_out(m.source, m.id)]
    held_out = [m for m in trainable if is_held_out(m.source, m.id)]
    if len({m.label for m in training}) < 2:
        raise SystemExit("training needs messages of both labels")

    # calibration from out-of-fold scores: five folds by the same kind of hash
    folds = 5
    full_scores: list[float] = []
    signal_scores: list[float] = []
    truth: list[bool] = []
    for fold in range(folds):
        inside = [m for m in training if _fold(m) != fold]
        outside = [m for m in training if _fold(m) == fold]
        if not outside or len({m.label for m in inside}) < 2:
            continue
        raw = fit(featurizer, inside)
        for message in outside:
            full, alone = raw_scores(raw, featurizer.rules, message.text)
            full_scores.append(full)
            signal_scores.append(alone)
            truth.append(message.product)
    both = len(set(truth)) == 2
    scale = fit_scale(full_scores, truth) if both else 1.0
    signals_scale = fit_scale(signal_scores, truth) if both else 1.0

    model = replace(fit(featurizer, training), scale=scale, signals_scale=signals_scale)
    info = {
        "messages": len(training),
        "held_out": len(held_out),
        "languages": dict(sorted(Counter(m.lang for m in training).items())),
        "sources": dict(sorted(Counter(m.source for m in training).items())),
        "features": len(model.weights),
        "C": C,
        "rules_digest": rules_digest(shipped_rules()),
    }
    model = replace(model, info=info)

    report: dict[str, Any] = {"info": info}
    lines = ["# Classifier model: how it was trained and how it scores", ""]
    lines += [
        f"Training messages: {len(training)}; held out: {len(held_out)} "
        f"({HELD_OUT_SHARE:.0%} of each source by a hash of source and id); "
        f"features with a weight: {len(model.weights)}; calibration scales {scale} (words "
        f"and signals), {signals_scale} (signals alone); coverage {dict(model.coverage)}.",
        "",
    ]
    for key, title, chosen in (
        ("held_out", "Held out", held_out),
        ("test_only", "Sources without a licence to train on (scored only)", test_only),
    ):
        if chosen:
            report[key], section_lines = section(title, score_with(model, chosen, min_confidence))
            lines += section_lines
    if cross_source:
        crossed: list[EvalResult] = []
        rows: dict[str, dict[str, Any]] = {}
        for source in sorted({m.source for m in trainable}):
            rest = [m for m in training if m.source != source]
            tested = [m for m in trainable if m.source == source]
            if len({m.label for m in rest}) < 2:
                continue
            without = replace(fit(featurizer, rest), scale=scale, signals_scale=signals_scale)
            scored_source = score_with(without, tested, min_confidence)
            crossed += scored_source.results
            rows[source] = figures(scored_source)
        everything = EvalReport(tuple(crossed))
        report["cross_source"] = {"sources": rows, "all": figures(everything)}
        lines += [
            "## Cross-source: trained without the source, tested on all of it",
            "",
            *table("source left out", {**rows, "all": figures(everything)}),
            "",
            *table("language (cross-source)", grouped(everything, "language")),
            "",
        ]
    return model, lines, report


def _fold(message: Message) -> int:
    digest = hashlib.sha256(f"fold\0{message.source}\0{message.id}".encode()).digest()
    return digest[0] % 5


def write_model(model: TextModel, path: Path) -> None:
    raw = json.dumps(model_data(model), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    path.write_bytes(gzip.compress(raw.encode("utf-8"), compresslevel=9, mtime=0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", type=Path, required=True, help="the data directory")
    parser.add_argument("--out", type=Path, required=True, help="where the model goes")
    parser.add_argument("--report", type=Path, help="where the report goes (Markdown)")
    parser.add_argument(
        "--manifest", type=Path, help="the files to read and their SHA-256 (default: every *.jsonl)"
    )
    parser.add_argument("--no-cross-source", action="store_true")
    args = parser.parse_args(argv)
    messages = read_messages(args.data, args.manifest)
    model, lines, _ = train(messages, cross_source=not args.no_cross_source)
    write_model(model, args.out)
    text = "\n".join(lines)
    if args.report:
        args.report.write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nwrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
