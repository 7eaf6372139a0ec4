"""The trained half of the text classifier: a linear model over words and their letter n-grams.

Why this shape (see the README, "The classifier"): rules only know the words someone wrote
down, and customers keep finding others ("I was charged twice", "is the lid dishwasher
safe?"). A linear model over the letter n-grams of each word generalises to inflections,
typos, compounds and unseen wording, stays explainable (every word's contribution is a
number an operator can read) and is fast: a word's score is the sum of its features'
weights, computed once per distinct word and cached by :class:`router.classify.Classifier`.

The model has two parts (:class:`TextModel`). The full part scores a message
``(sum of its words' scores + signals) / sqrt(words)``, positive for product. The
*signals* (:data:`SIGNALS`) are what does not depend on the language of the training
data: the shipped rules' evidence for each category (the rules cover every language we
serve, the training data mostly English) and whether no rule matched a message of two words
or more (a single one, "hello", "test", is no sign of anything). The second
part weighs the signals alone. Their logits are mixed per language: a language the
training data hardly covers is scored by the signals alone, since n-grams learnt from
other languages are noise there, and even a covered one only half by its words (in
leave-one-source-out tests, words learnt from one kind of shop carried over to another
worse than the rules did). There is no intercept, on purpose: then neither the length of
a message nor a word the model knows nothing about can flip the sign of its logit, only
shrink it (the one exception: a second word makes "no rule matched" count), and a message
with no evidence at all scores 0 (``unknown``). Each part is calibrated by a scale fitted
on out-of-fold predictions, so a confidence of 0.9 is right about nine times in ten on
data like the training data.

Everything that defines a feature lives here, so training (``train/classifier.py``) and
classifying can never disagree. Pure: words in, numbers out; only :func:`load_model` reads a
file. Imports nothing of the project.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MODEL_FORMAT",
    "SIGNALS",
    "TextModel",
    "combine",
    "load_model",
    "model_data",
    "signals",
    "word_features",
    "word_key",
]

#: Bumped whenever a feature's definition changes; a model of another format is refused.
MODEL_FORMAT = 2
#: Letter n-grams of the word with ``<`` and ``>`` marking its ends.
NGRAMS = (4, 5)
#: Longer words are cut: past this, a word is a URL, an address or a token, not language.
MAX_WORD = 24
_DIGIT = re.compile(r"\d")


def word_key(word: str) -> str:
    """The form of a folded *word* the model sees: digits as ``0`` (an order number is a
    shape, not a value), at most :data:`MAX_WORD` letters."""
    if any(ch.isdigit() for ch in word):
        word = _DIGIT.sub("0", word)
    return word[:MAX_WORD]


def word_features(word: str) -> list[str]:
    """The features of one folded word: the word itself (``w:`` prefixed) and its letter
    n-grams with end markers, repeats included (a count, not a set)."""
    key = word_key(word)
    marked = f"<{key}>"
    features = [f"w:{key}"]
    for size in NGRAMS:
        features.extend(marked[i : i + size] for i in range(len(marked) - size + 1))
    return features


#: The language-independent inputs, in the order of :attr:`TextModel.signal_weights`.
SIGNALS = ("rules_admin", "rules_product", "no_rule")
#: "No rule matched" says something only of a message long enough for a rule to have had a
#: chance: a single word ("hello", "test", "Привет") matching none is no sign of a product
#: question, two are ("Koliko kil zdrži?" is three). Three would cost 1.4 points
#: cross-source, mostly short chat queries.
NO_RULE_MIN_WORDS = 2


def signals(admin: float, product: float, count: int) -> tuple[float, float, float]:
    """The values of :data:`SIGNALS` for a message of *count* words whose shipped rules
    total *admin* and *product*: diminishing returns, so ten matching words are not ten
    times one."""
    nothing = not admin and not product and count >= NO_RULE_MIN_WORDS
    return math.log1p(admin), math.log1p(product), 1.0 if nothing else 0.0


def combine(
    word_factor: float,
    signal_factors: Sequence[float],
    word_total: float,
    values: Sequence[float],
    count: int,
) -> tuple[float, list[float]]:
    """A logit and what each signal added to it before the division by the root of the
    length: ``(word_factor * word_total + sum(factor * value)) / sqrt(count)`` for a
    message of *count* > 0 words. The one place the model's sum is written."""
    contributions = [f * v for f, v in zip(signal_factors, values, strict=True)]
    return (word_factor * word_total + sum(contributions)) / math.sqrt(count), contributions


@dataclass(frozen=True, slots=True, eq=False)
class TextModel:
    """A trained model, in two parts.

    The *full* part: a weight per feature (positive: product) and per signal
    (:data:`SIGNALS`), calibrated by *scale*. The *signals* part: weights for the signals
    alone, calibrated by *signals_scale*: what is known of a message in a language the
    training data barely covers, where the letter n-grams learnt from other languages are
    noise. *coverage* says, per language, how far the full part is trusted (0 to 1, from
    how many training messages were in that language); the two parts' logits are mixed
    accordingly.
    """

    weights: Mapping[str, float]
    signal_weights: tuple[float, ...]
    scale: float
    signals_only: tuple[float, ...] = (0.0,) * len(SIGNALS)
    signals_scale: float = 1.0
    coverage: Mapping[str, float] = field(default_factory=dict)
    digest: str = ""  # identifies the model (hash of its file's content) in reports
    info: Mapping[str, Any] = field(default_factory=dict)  # how it was trained

    def word_score(self, word: str) -> float:
        """What one folded word adds to the full part's score of a message."""
        get = self.weights.get
        return math.fsum(get(feature, 0.0) for feature in word_features(word))

    def knows(self, word: str) -> bool:
        """Whether any feature of *word* has a weight."""
        return any(feature in self.weights for feature in word_features(word))

    def score(
        self,
        words: Iterable[str],
        admin: float = 0.0,
        product: float = 0.0,
        language: str | None = None,
    ) -> float:
        """The logit of product for a message of folded *words* with the rules' *admin*
        and *product* totals, in *language* (see the module doc); 0 for no words."""
        listed = list(words)
        total = math.fsum(map(self.word_score, listed))
        return self.logit(total, len(listed), signals(admin, product, len(listed)), language)

    def logit(
        self, word_total: float, count: int, values: Sequence[float], language: str | None
    ) -> float:
        """The logit of product from the sum of the words' scores, their number, the
        signals' values and the message's language; 0 for no words."""
        if count <= 0:
            return 0.0
        return combine(*self.factors(language), word_total, values, count)[0]

    def factors(self, language: str | None) -> tuple[float, tuple[float, ...]]:
        """What a word's score and each signal's value are multiplied by in the logit of a
        message in *language* (before the division by the root of its length)."""
        trust = self.coverage.get(language, 0.0) if language else 0.0
        return trust * self.scale, tuple(
            trust * self.scale * full + (1.0 - trust) * self.signals_scale * alone
            for full, alone in zip(self.signal_weights, self.signals_only, strict=True)
        )

    @staticmethod
    def probability(logit: float) -> float:
        """p(product) for a *logit*."""
        if logit < -700:  # exp() would overflow; the probability is 0 to double precision
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))


def model_data(model: TextModel) -> dict[str, Any]:
    """The JSON form of *model* (what :func:`load_model` reads)."""
    return {
        "format": MODEL_FORMAT,
        "ngrams": list(NGRAMS),
        "max_word": MAX_WORD,
        "scale": model.scale,
        "signals": dict(zip(SIGNALS, model.signal_weights, strict=True)),
        "signals_only": dict(zip(SIGNALS, model.signals_only, strict=True)),
        "signals_scale": model.signals_scale,
        "coverage": dict(sorted(model.coverage.items())),
        "info": dict(model.info),
        "weights": dict(sorted(model.weights.items())),
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _from_data(data: Mapping[str, Any], digest: str) -> TextModel:
    if data.get("format") != MODEL_FORMAT:
        raise ValueError(f"model format {data.get('format')!r}: expected {MODEL_FORMAT}")
    if tuple(data.get("ngrams", ())) != NGRAMS or data.get("max_word") != MAX_WORD:
        raise ValueError("model features differ from this code's (ngrams, max_word)")
    weights = data["weights"]
    if not isinstance(weights, dict) or not all(map(_is_number, weights.values())):
        raise ValueError("model weights: expected a map of feature to number")
    named, alone = data["signals"], data["signals_only"]
    for value in (named, alone):
        if not isinstance(value, dict) or set(value) != set(SIGNALS):
            raise ValueError(f"model signals: expected {', '.join(SIGNALS)}")
        if not all(map(_is_number, value.values())):
            raise ValueError("model signals: expected a number per signal")
    for name in ("scale", "signals_scale"):
        if not _is_number(data[name]):
            raise ValueError(f"model {name}: expected a number")
    coverage = data["coverage"]
    if not isinstance(coverage, dict) or not all(
        _is_number(v) and 0 <= v <= 1 for v in coverage.values()
    ):
        raise ValueError("model coverage: expected a map of language to a share 0–1")
    return TextModel(
        weights={str(k): float(v) for k, v in weights.items()},
        signal_weights=tuple(float(named[name]) for name in SIGNALS),
        scale=float(data["scale"]),
        signals_only=tuple(float(alone[name]) for name in SIGNALS),
        signals_scale=float(data["signals_scale"]),
        coverage={str(k): float(v) for k, v in coverage.items()},
        digest=digest,
        info=dict(data.get("info") or {}),
    )


def load_model(path: Path) -> TextModel:
    """The model in *path* (JSON, gzip-compressed when the name ends in ``.gz``).

    Raises ValueError for a file that is not a model of this format."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = gzip.decompress(raw) if path.suffix == ".gz" else raw
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg})") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, cut short, not text
        raise ValueError(f"{path}: not a readable model file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    try:
        return _from_data(data, digest)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
