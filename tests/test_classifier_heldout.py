"""The held-out sets the classifier is judged on, pinned by hash so that nobody tunes to
them unnoticed: changing a pinned file fails here, on purpose.

``classifier_blind.jsonl`` (420 messages, 60 per language, 30 % product) was written by a
helper who saw neither the rules nor the code nor any training data, and was committed
before the model was trained or any rule changed after it. It is used for nothing but
these figures: no rule, feature or setting is chosen by looking at it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from router.classify import parse_examples
from router.classify_lang import LANGUAGES

DATA = Path(__file__).parent / "data"
BLIND = DATA / "classifier_blind.jsonl"
BLIND_SHA256 = "a1ac7b00c176ff2d78f0568f8acf7264c2ec18687a54bb7d5af493331a89d664"


def test_the_blind_set_is_the_one_committed_before_training() -> None:
    assert hashlib.sha256(BLIND.read_bytes()).hexdigest() == BLIND_SHA256
    examples = parse_examples(BLIND.read_text(encoding="utf-8").splitlines())
    counts = Counter((e.lang, e.label.value) for e in examples)
    assert counts == {
        (lang, label): n for lang in LANGUAGES for label, n in (("admin", 42), ("product", 18))
    }
