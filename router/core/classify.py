"""The text classifier: is a message an administrative contact or a product question?

Rules are data: weighted words and phrases per category, one file per language under
``config/classifier/`` (:func:`shipped_rules`), extended or overridden by the routing
document's ``classifier.rules``. Every rule of every language applies to every message.
With a trained model (:mod:`router.core.classify_model`, the shipped one in routing), the rules'
totals are among the model's inputs and the detected language says how far the model's
words are trusted; without one, the language is detected (or given) only to report it.

Matching happens on folded text (:func:`fold`: lower case, no diacritics), so "Objednávka",
"OBJEDNAVKA" and "objednavku" are one word to the rules. A rule phrase is words separated
by spaces, matching consecutive words of the message. A one-word rule and the last word of
a phrase are **stems**, the other words of a phrase exact words ("kde je moje objednav");

* a stem matches every word that starts with it ("objednav" matches "objednavka",
  "objednavku", "objednavat"); a stem of six or more letters ending in a vowel drops that
  vowel ("faktura" matches "faktury", "fakturu"), and a stem of six or more letters
  tolerates one typo after its first letter ("objedavka", "delviery"), counting half its
  weight then;
* ``word$``: that exact word only ("jak$" is not "jaky");
* ``word*``: a stem anywhere in a phrase ("prisl* rozbit" matches "prisla rozbita");
* ``*word``: any word containing it, for German compounds ("*konto" matches "kundenkonto");
* ``*`` alone: up to three arbitrary words ("kde * objednav" matches "kde je moje objednavka").

A Cyrillic word also matches its Latin transliterations ("заказ" matches "zakaz",
"посылк" matches "posylka", "posilka"). When several one-word rules match the same word,
only the most specific one counts (the longest stem; an exact word beats a stem of the same
length), so a general stem can have exceptions: "porad" (still) is not "poradit" (advise).
Phrases count in addition to the words in them. A rule counts once however often it
matches. Weights may be negative (evidence against a category; totals do not go below 0);
a weight of 0 marks a known neutral word: it counts nothing but, being the most specific
match, keeps shorter stems and typo matching off that word ("достат" is not "достав").

Without a model, the category with the larger total wins; its confidence is ``total /
(admin + product + 1)``, so it grows with the amount of evidence as well as with its share
(one weight-2 rule alone gives 0.67). No evidence, a tie, or a confidence below
``min_confidence`` gives ``unknown``. Adding a word that matches no rule never changes a
result. With a model, operators' rules (``Rule.override``) decide in the same way wherever
they match and do not tie; otherwise the model's calibrated probability decides, and the
result's matches end with its strongest words and signals (``model:…``). Adding a word
neither the rules nor the model know never changes the category of a message of two words
or more (to a single word matching no rule it adds the "no rule matched" signal: see
:data:`router.classify_model.NO_RULE_MIN_WORDS`).

Pure: no I/O here except in the loaders (:func:`load_rules`, :func:`shipped_rules`,
:func:`shipped_model`).
Compiled rules are cached per rules tuple, and what each distinct word matches is cached,
so classifying a message is a dictionary lookup per word plus the phrase checks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from itertools import compress
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from router.core import classify_lang
from router.core.classify_model import SIGNALS, TextModel, combine, load_model, signals
from router.core.contact import Category, CategorySource

__all__ = [
    "MODEL_FILE",
    "Classification",
    "Classifier",
    "EvalReport",
    "EvalResult",
    "Example",
    "Rule",
    "RuleMatch",
    "classify",
    "compile_rules",
    "evaluate",
    "fold",
    "load_rules",
    "parse_examples",
    "render_report",
    "rules_digest",
    "rules_from_data",
    "shipped_classifier",
    "shipped_model",
    "shipped_rules",
]

#: Added to the evidence of both categories when computing a confidence (see module doc).
EVIDENCE_PRIOR = 1.0
#: Stems at least this long tolerate one typo, in words at least this long.
TYPO_MIN = 6
#: What a rule matched only through a typo counts of its weight.
TYPO_FACTOR = 0.5
#: A word matching a language's rule is this much evidence of that language.
RULE_VOTE = 1.0
#: How many arbitrary words a ``*`` in a phrase stands for at most.
MAX_GAP = 3
#: How many of the model's strongest words a result lists among its matches.
MODEL_MATCHES = 3
_SIGNAL_NAMES = tuple(f"model:{name}" for name in SIGNALS)
_DECISIVE = (Category.ADMIN, Category.PRODUCT)
# module constants: an enum member looked up through its class costs on the hot path
_ADMIN, _PRODUCT, _UNKNOWN = Category.ADMIN, Category.PRODUCT, Category.UNKNOWN
_TEXT = CategorySource.TEXT


@dataclass(frozen=True, slots=True)
class Rule:
    """A word stem or phrase (see the module doc) that votes for *category* with *weight*.

    *lang* says which language's rules it belongs to (None: any); it does not restrict
    where the rule applies."""

    phrase: str
    category: Category
    weight: float = 1.0
    lang: str | None = None
    #: an operator's rule (the routing document's ``classifier.rules``): where such rules
    #: match, they decide, whatever the model says (see :meth:`Classifier.classify`)
    override: bool = False


class RuleMatch(NamedTuple):
    """A rule (or, ``model:…``, one of the model's words or signals) that counted, with the
    weight it counted with. A named tuple: several are built per message."""

    rule: str
    category: Category
    weight: float


# RuleMatch from a ready tuple, skipping the named tuple's Python-level __new__ (a third of
# the cost of explaining a result)
_new_match: Callable[[tuple[str, Category, float]], RuleMatch] = partial(tuple.__new__, RuleMatch)


class Classification(NamedTuple):
    """What the classifier (or the IVR digit, or the thread) decided. A named tuple rather
    than a frozen dataclass: it is built once per message, and a frozen dataclass's
    ``__init__`` costs as much as a third of classifying the message."""

    category: Category
    confidence: float
    source: CategorySource
    matches: tuple[RuleMatch, ...] = ()
    language: str | None = None

    @property
    def rule(self) -> str | None:
        """The strongest matching rule for the category decided (stored with the
        interaction); for ``unknown`` the strongest of all. Only where no rule matched, the
        model's strongest word (``model:…``); never one of its signals, which only restate
        the rules."""
        rules = [m for m in self.matches if not m.rule.startswith("model:")]
        if not rules:
            rules = [m for m in self.matches if m.rule not in _SIGNAL_NAMES]
        decisive = [m for m in rules if m.category is self.category and m.weight > 0]
        chosen = decisive or rules
        return max(chosen, key=lambda m: abs(m.weight)).rule if chosen else None


# -- folding ----------------------------------------------------------------------------------


def _combining_class() -> str:
    points = [c for c in range(0x10000) if unicodedata.combining(chr(c))]
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    parts = (
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return "[" + "".join(parts) + "]+"


_COMBINING = re.compile(_combining_class())
# letters with a stroke or ligatures that Unicode does not decompose
_SPECIAL = str.maketrans({"ł": "l", "đ": "d", "ø": "o", "ħ": "h", "ŧ": "t", "ı": "i",
                          "æ": "ae", "œ": "oe", "ŀ": "l"})  # fmt: skip
_SPECIAL_CHARS = re.compile("[łđøħŧıæœŀ]")


def _fold_once(text: str) -> str:
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    folded = _COMBINING.sub("", folded)
    if _SPECIAL_CHARS.search(folded):
        folded = folded.translate(_SPECIAL)
    return folded


def fold(text: str) -> str:
    """Lower-case *text* and strip diacritics ("Objednávka" -> "objednavka", "Łódź" ->
    "lodz", "ЗАКАЗЫ" -> "заказы", "й" -> "и"). Idempotent: ``fold(fold(t)) == fold(t)``."""
    if text.isascii():
        return text.lower()
    folded = _fold_once(text)
    # a few compatibility characters need a second round (their decomposition has case)
    for _ in range(4):
        if folded.isascii():
            return folded.lower()
        again = _fold_once(folded)
        if again == folded:
            return folded
        folded = again
    return folded


_APOSTROPHES = re.compile("['’ʼ`´]")
_WORD = re.compile(r"\w+")
_VOWELS = frozenset("aeiouyаеиоуыэюяь")
_NUMBER_WORD = "<number>"  # a rule word matching any number of five or more digits
_NUMBER_DIGITS = 5


def words(text: str) -> list[str]:
    """The folded words of *text*, as rules see them (apostrophes dropped: "doesn't" is
    "doesnt", Russian "vernut'" is "vernut")."""
    return _WORD.findall(_APOSTROPHES.sub("", fold(text)))


# -- compiling rules ----------------------------------------------------------------------------

_PREFIX, _EXACT, _INFIX, _NUMBER = 0, 1, 2, 3
_GAP = -1


@dataclass(frozen=True, slots=True)
class _Term:
    text: str
    kind: int

    @property
    def specificity(self) -> float:
        if self.kind == _NUMBER:
            return 0.0
        return len(self.text) + (0.5 if self.kind == _EXACT else 0.0)


def _parse_phrase(phrase: str) -> list[_Term | None]:
    """The words of a rule phrase; None is a gap (``*``)."""
    chunks = fold(phrase).split()
    parts: list[_Term | None] = []
    for position, chunk in enumerate(chunks):
        if chunk == "*":
            parts.append(None)
            continue
        if chunk == _NUMBER_WORD:
            parts.append(_Term(_NUMBER_WORD, _NUMBER))
            continue
        infix = chunk.startswith("*")
        exact = chunk.endswith("$")
        # the last word of a phrase is a stem unless marked "$", the others are exact words
        # unless marked "*" ("prisl* rozbit")
        stem = chunk.endswith("*") or (position == len(chunks) - 1 and not exact)
        pieces = words(chunk.strip("*$"))
        for index, piece in enumerate(pieces):
            if infix and len(pieces) == 1:
                parts.append(_Term(piece, _INFIX))
            elif stem and index == len(pieces) - 1:
                if len(piece) >= TYPO_MIN and piece[-1] in _VOWELS:
                    piece = piece[:-1]
                parts.append(_Term(piece, _PREFIX))
            else:
                parts.append(_Term(piece, _EXACT))
    while parts and parts[0] is None:
        parts.pop(0)
    while parts and parts[-1] is None:
        parts.pop()
    return parts


def _selectivity(term: _Term | None) -> int:
    """How rarely *term* may occur, roughly: function words are frequent."""
    if term is None:
        return -100
    common = 10 if classify_lang.is_function_word(term.text) else 0
    return len(term.text) + (1 if term.kind == _EXACT else -1) - common


class _Group(NamedTuple):
    """Phrases found through the same anchor word (see Classifier.__init__)."""

    anchor: int  # where the anchor is in each phrase
    beside: int  # where the word checked next to it is, or -1 (then the key is _GAP)
    # that word's term -> (rules of the phrases it completes, longer phrases to check on)
    table: dict[int, tuple[list[int], list[int]]]


class _Chunk(NamedTuple):
    """What one whitespace-separated chunk of a message matches, computed once per distinct
    chunk and cached, so that a message costs a dictionary lookup per chunk."""

    terms: tuple[frozenset[int], ...]  # per word: every term it matches
    matches: frozenset[int]  # one-word rules counted (+ rule count when only by typo)
    # phrases it may anchor: (word offset where they would start, _Group.beside, .table)
    starts: tuple[tuple[int, int, dict[int, tuple[list[int], list[int]]]], ...]
    votes: int  # language votes, packed (see _pack)
    # the votes again where the rules or the model know a word of it, else 0: what the
    # model's trust is told from, so that an unknown word cannot move that
    known_votes: int
    score: float  # what its words add to the model's score (0 without a model)
    size: int  # how many words it has
    # the word that adds the most, either way: (magnitude, what it adds, "model:<word>"),
    # or None
    strongest: tuple[float, float, str] | None


_NO_TERMS: frozenset[int] = frozenset()
_GAP_WORD = frozenset([_GAP])  # the key of phrases checked without a word beside the anchor
#: Distinct pieces kept (~0.9 KB each, so ~27 MB at most); past it the cache starts again.
#: It was 200,000 (up to ~180 MB), and under sustained mixed load it was the service's
#: memory growth: +18 MB per 20,000 messages (bench/RESULTS.md, goal 5).
_CACHE_LIMIT = 30_000
#: A piece with a digit (an order number, a date, an amount, a phone number) is mostly seen
#: once, so at most this many of them are kept, apart from the rest, and dropped together
#: when there are more: a message read again still finds its pieces, and a stream of new
#: order numbers cannot fill the cache.
_NUMBERED_LIMIT = 4_000
_HAS_DIGIT = re.compile(r"\d").search


def _osa_distance_at_most_one(a: str, b: str) -> bool:
    """Whether *a* and *b* differ by at most one edit (insert, delete, substitute, swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    i = 0
    while i < min(la, lb) and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    if la > lb:
        return a[i + 1 :] == b[i:]
    return a[i:] == b[i + 1 :]


def _deletions(word: str) -> set[str]:
    """*word* with one letter after the first removed."""
    return {word[:i] + word[i + 1 :] for i in range(1, len(word))}


class Classifier:
    """Rules compiled for matching; build one with :func:`compile_rules`."""

    def __init__(
        self,
        rules: Iterable[Rule],
        model: TextModel | None = None,
        service: Classifier | None = None,
    ) -> None:
        self.model = model
        #: rules of contacts about the shop's service (a person, opening hours, a complaint,
        #: the profile, a code): with a model, they decide "admin" where they outweigh the
        #: rules' product evidence and the model did not say admin (:func:`shipped_service`)
        self.service = service
        # a later rule with the same phrase replaces an earlier one (operator overrides)
        by_phrase: dict[str, Rule] = {}
        langs: dict[str, set[str]] = {}  # languages whose files list the phrase
        for rule in rules:
            key = _phrase_key(rule.phrase)
            by_phrase.pop(key, None)
            by_phrase[key] = rule
            if rule.lang:
                langs.setdefault(key, set()).add(_language_tag(rule.lang))
        self.rules: tuple[Rule, ...] = tuple(by_phrase.values())
        self._rule_count = len(self.rules)
        self._names = tuple(by_phrase)
        self._langs = tuple(tuple(sorted(langs.get(key, ()))) for key in self._names)
        self._terms: dict[_Term, int] = {}
        self._single: dict[int, list[int]] = {}  # term -> one-word rules
        self._phrases: list[tuple[int, tuple[int, ...]]] = []  # (rule, term ids / _GAP)
        groups: dict[tuple[int, int, int], _Group] = {}
        for index, rule in enumerate(self.rules):
            if rule.category not in _DECISIVE:
                continue
            parts = _parse_phrase(rule.phrase)
            if not parts:
                continue
            ids = tuple(_GAP if part is None else self._term(part) for part in parts)
            if len(ids) == 1:
                self._single.setdefault(ids[0], []).append(index)
                continue
            if not rule.weight:
                continue  # (only single words are neutral words)
            # A phrase is looked for where its rarest-looking word before any gap (its
            # anchor: long, not a function word) occurs, and only if the word next to the
            # anchor (before it when a gap follows) matches that word of the phrase: phrases
            # sharing an anchor ("hat der", "hat die") are grouped, so one table lookup
            # finds the right one.
            lead = ids.index(_GAP) if _GAP in ids else len(ids)
            anchor = max(range(lead), key=lambda i: _selectivity(parts[i]))
            beside = anchor + 1 if anchor + 1 < lead else anchor - 1
            group = groups.setdefault((ids[anchor], anchor, beside), _Group(anchor, beside, {}))
            # a phrase of two words has matched once its anchor and the word beside it have
            neighbour = ids[beside] if beside >= 0 else _GAP
            entry = group.table.setdefault(neighbour, ([], []))
            if len(ids) == 2:
                entry[0].append(index)
            else:
                entry[1].append(len(self._phrases))
            self._phrases.append((index, ids))
        self._groups = list(groups.values())
        self._anchor_groups: dict[int, list[_Group]] = {}  # term -> groups it anchors
        for (term, _, _), group in groups.items():
            self._anchor_groups.setdefault(term, []).append(group)
        self._term_list = sorted(self._terms, key=self._terms.__getitem__)
        # what each match id stands for: rule i matched (i) or matched only by typo (i + n)
        self._outcomes = [
            RuleMatch(name, rule.category, rule.weight * factor)
            for factor in (1.0, TYPO_FACTOR)
            for name, rule in zip(self._names, self.rules, strict=True)
        ]
        # per match id, its weight for each category (0 for the other): sum() adds floats
        # without allocating, which it does not do for complex numbers. With a model, the
        # operators' rules are totalled apart, since they decide on their own.
        operator = [r.override and model is not None for _ in (1, 2) for r in self.rules]
        self._has_overrides = any(operator)

        def weights(category: Category, operators: bool) -> list[float]:
            return [
                o.weight if o.category is category and flag is operators else 0.0
                for o, flag in zip(self._outcomes, operator, strict=True)
            ]

        self._admin_weights = weights(Category.ADMIN, False)
        self._product_weights = weights(Category.PRODUCT, False)
        self._override_admin = weights(Category.ADMIN, True)
        self._override_product = weights(Category.PRODUCT, True)
        self._index()
        self._cache: dict[str, _Chunk] = {}  # whitespace-separated piece -> what it matches
        self._numbered: list[str] = []  # the pieces of the cache that have a digit
        self._factor_cache: dict[str | None, tuple[float, tuple[float, ...]]] = {}

    @property
    def cached_pieces(self) -> int:
        """How many distinct pieces of text the classifier keeps what it worked out for."""
        return len(self._cache)

    def _term(self, term: _Term) -> int:
        return self._terms.setdefault(term, len(self._terms))

    def _index(self) -> None:
        self._exact: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        self._infix: list[tuple[str, int]] = []
        self._number: list[int] = []
        self._typo: dict[str, list[int]] = {}
        self._translit: dict[str, list[int]] = {}
        self._translit_exact: dict[str, list[int]] = {}
        for term, ident in self._terms.items():
            text = term.text
            if term.kind == _EXACT:
                self._exact.setdefault(text, []).append(ident)
            elif term.kind == _INFIX:
                self._infix.append((text, ident))
            elif term.kind == _NUMBER:
                self._number.append(ident)
            else:
                self._prefix.setdefault(text, []).append(ident)
                if len(text) >= TYPO_MIN and text.isalpha():
                    for key in {text} | _deletions(text):
                        self._typo.setdefault(key, []).append(ident)
            if term.kind in (_PREFIX, _EXACT) and not text.isascii():
                latin = classify_lang.transliterate(text)
                if latin != text and classify_lang.is_latin_word(latin) and len(latin) >= 3:
                    table = self._translit if term.kind == _PREFIX else self._translit_exact
                    table.setdefault(classify_lang.skeleton(latin), []).append(ident)
        self._prefix_lengths = sorted({len(key) for key in self._prefix})
        self._typo_lengths = sorted(
            {len(self._term_list[ident].text) for idents in self._typo.values() for ident in idents}
        )
        self._translit_lengths = sorted({len(key) for key in self._translit})

    # -- per word --------------------------------------------------------------------------

    def _match_word(self, word: str) -> tuple[set[int], bool]:
        """The terms *word* matches, and whether only through a typo."""
        hits: set[int] = set(self._exact.get(word, ()))
        size = len(word)
        for length in self._prefix_lengths:
            if length > size:
                break
            hits.update(self._prefix.get(word[:length], ()))
        for text, ident in self._infix:
            if text in word:
                hits.add(ident)
        if self._number and size >= _NUMBER_DIGITS and word.isdigit():
            hits.update(self._number)
        if classify_lang.is_latin_word(word) and (self._translit or self._translit_exact):
            key = classify_lang.skeleton(word)
            hits.update(self._translit_exact.get(key, ()))
            for length in self._translit_lengths:
                if length > len(key):
                    break
                hits.update(self._translit.get(key[:length], ()))
        if not hits and size >= TYPO_MIN and word.isalpha():
            return self._typo_hits(word), True
        return hits, False

    def _typo_hits(self, word: str) -> set[int]:
        hits: set[int] = set()
        for length in self._typo_lengths:
            for cut in (length - 1, length, length + 1):
                if cut > len(word):
                    continue
                head = word[:cut]
                for key in {head} | _deletions(head):
                    for ident in self._typo.get(key, ()):
                        stem = self._term_list[ident].text
                        if len(stem) == length and _osa_distance_at_most_one(head, stem):
                            hits.add(ident)
        return hits

    def _learn(self, piece: str) -> _Chunk:
        """What the whitespace-separated *piece* of a message matches."""
        chunk = piece.lower()
        terms: list[frozenset[int]] = []
        matches: set[int] = set()
        starts: list[tuple[int, int, dict[int, tuple[list[int], list[int]]]]] = []
        votes: dict[str, float] = {}
        found = words(chunk)
        score, strongest, known = 0.0, None, 0
        if self.model is not None:
            for word in found:
                value = self.model.word_score(word)
                score += value
                known += self.model.knows(word)
                if value and (strongest is None or abs(value) > strongest[0]):
                    strongest = (abs(value), value, f"model:{word}")
        for offset, word in enumerate(found):
            hits, typo = self._match_word(word)
            terms.append(frozenset(hits) if hits else _NO_TERMS)
            for lang, vote in classify_lang.word_votes(chunk, word):
                votes[lang] = votes.get(lang, 0.0) + vote
            single = [(t, r) for t in hits for r in self._single.get(t, ())]
            if single:
                # the most specific stem counts, among the shipped rules and, apart, among
                # the operators' (a shorter stem of theirs is not shadowed by a shipped one)
                rules = [
                    r
                    for operators in (False, True)
                    for r in self._most_specific(
                        [(t, r) for t, r in single if self.rules[r].override is operators]
                    )
                ]
                # neutral words (weight 0) only keep other stems off a word: no match
                matches.update(
                    r + len(self.rules) if typo else r for r in rules if self.rules[r].weight
                )
                if not typo:
                    voters = {
                        lang for r in rules if self.rules[r].weight >= 1 for lang in self._langs[r]
                    }
                    for lang in voters:
                        votes[lang] = votes.get(lang, 0.0) + RULE_VOTE
            starts.extend(
                (offset - group.anchor, group.beside, group.table)
                for t in hits
                for group in self._anchor_groups.get(t, ())
            )
        packed = _pack(votes)
        learned = _Chunk(
            tuple(terms),
            frozenset(matches) if matches else _NO_TERMS,
            tuple(starts),
            packed,
            packed if known or any(terms) else 0,
            score,
            len(found),
            strongest,
        )
        if _HAS_DIGIT(piece):
            numbered = self._numbered
            if len(numbered) >= _NUMBERED_LIMIT:
                for old in numbered:
                    del self._cache[old]
                numbered.clear()
            numbered.append(piece)
        self._cache[piece] = learned
        return learned

    def _most_specific(self, candidates: list[tuple[int, int]]) -> list[int]:
        """The rules of the most specific terms among *candidates* (term, rule)."""
        if not candidates:
            return []
        top = max(self._term_list[t].specificity for t, _ in candidates)
        return [r for t, r in candidates if self._term_list[t].specificity == top]

    def _chunks(self, text: str) -> list[_Chunk]:
        """What each whitespace-separated piece of *text* matches."""
        pieces = text.split()
        try:  # nearly always: every piece seen before (a miss raises, costing nothing else)
            return list(map(self._cache.__getitem__, pieces))
        except KeyError:
            pass
        if len(self._cache) - len(self._numbered) >= _CACHE_LIMIT:
            self._cache.clear()
            self._numbered.clear()
        cache, learn = self._cache, self._learn
        return [cache.get(piece) or learn(piece) for piece in pieces]

    @staticmethod
    def _phrase_at(
        parts: tuple[int, ...], k: int, chunks: list[_Chunk], index: int, at: int
    ) -> bool:
        """Whether *parts*[k:] match the words of the message from the one *at* words after
        the first word of chunk *index* on (*at* may be negative)."""
        while k < len(parts):
            part = parts[k]
            if part == _GAP:
                return any(
                    Classifier._phrase_at(parts, k + 1, chunks, index, at + skip)
                    for skip in range(MAX_GAP + 1)
                )
            words = chunks[index].terms
            word = words[at] if 0 <= at < len(words) else _word_terms(chunks, index, at)
            if part not in word:
                return False
            k += 1
            at += 1
        return True

    # -- per message -----------------------------------------------------------------------

    def classify(
        self, text: str, lang: str | None = None, *, min_confidence: float = 0.0
    ) -> Classification:
        """Classify *text* (see the module doc); *lang* is reported as the language instead
        of the detected one."""
        chunks = self._chunks(text)
        hint = _language_tag(lang) if lang else None
        if not chunks:
            return self._decide(set(), hint, min_confidence)
        # one C-level pass per field
        _, matches, starts, votes, known_votes, scores, sizes, strongest = zip(
            *chunks, strict=False
        )
        found = self._found(chunks, matches, starts)
        if hint and self.model is None:
            detected: str | None = None  # (only the model needs it when a hint is given)
        else:
            detected = _best_language(votes[:_VOTE_CHUNKS] if len(votes) > _VOTE_CHUNKS else votes)
        language = hint or detected
        if self.model is None:
            return self._decide(found, language, min_confidence)
        # How far the model's words are trusted follows the language the text is in, told
        # from the words something knows: the same as *detected* unless a word nobody knows
        # voted, and such a word must not change a decision.
        if known_votes != votes:
            known_votes = known_votes[:_VOTE_CHUNKS]
            detected = _best_language(known_votes) if any(known_votes) else None
        factors = self._factors(detected or hint)
        return self._decide_with_model(
            text,
            found,
            language,
            min_confidence,
            sum(scores),
            sum(sizes),
            strongest,
            factors,
        )

    def _found(
        self, chunks: list[_Chunk], matches: Sequence[frozenset[int]], starts: Sequence[object]
    ) -> set[int]:
        """The match ids of the rules that *chunks* match (*matches* and *starts*: their
        fields of those names), phrases included."""
        found: set[int] = set().union(*matches)
        if any(starts):
            found.update(self._phrase_matches(chunks, starts))
        return found

    def _factors(self, language: str | None) -> tuple[float, tuple[float, ...]]:
        known = self._factor_cache.get(language)
        if known is None:
            assert self.model is not None
            known = self._factor_cache[language] = self.model.factors(language)
        return known

    def evidence(self, text: str) -> tuple[float, float]:
        """The rules' admin and product totals for *text* (what the model takes among its
        signals; operators' rules left out when there is a model)."""
        chunks = self._chunks(text)
        if not chunks:
            return 0.0, 0.0
        _, matches, starts, *_ = zip(*chunks, strict=False)
        ordered = self._matched(self._found(chunks, matches, starts))
        return self._totals(ordered, self._admin_weights, self._product_weights)

    def _phrase_matches(self, chunks: list[_Chunk], starts: Sequence[object]) -> set[int]:
        """The phrase rules matched; *starts* is each chunk's ``starts``."""
        seen: set[int] = set()
        phrases = self._phrases
        count = len(chunks)
        for index in compress(range(count), starts):
            words = chunks[index].terms
            for offset, beside, table in chunks[index].starts:
                if beside < 0:
                    word = _GAP_WORD
                else:
                    at = offset + beside
                    if 0 <= at < len(words):
                        word = words[at]
                    elif at == len(words) and index + 1 < count and chunks[index + 1].terms:
                        word = chunks[index + 1].terms[0]  # most often: the next word…
                    elif at == -1 and index and chunks[index - 1].terms:
                        word = chunks[index - 1].terms[-1]  # …or the one before
                    else:
                        word = _word_terms(chunks, index, at)
                    if not word:
                        continue
                for term in word:
                    entry = table.get(term)
                    if entry is None:
                        continue
                    complete, longer = entry
                    seen.update(complete)
                    for phrase in longer:
                        rule, parts = phrases[phrase]
                        if rule not in seen and self._phrase_at(parts, 0, chunks, index, offset):
                            seen.add(rule)
        return seen

    def _matched(self, found: set[int]) -> list[int]:
        """The match ids of *found* in order, a typo match dropped where its rule also
        matched exactly."""
        ordered = sorted(found)
        count = self._rule_count
        if ordered and ordered[-1] >= count:  # some rule matched only through a typo…
            found -= found.intersection(map(count.__add__, ordered))  # …or also exactly
            ordered = sorted(found)
        return ordered

    @staticmethod
    def _totals(
        ordered: list[int], admin_weights: list[float], product_weights: list[float]
    ) -> tuple[float, float]:
        admin = sum(map(admin_weights.__getitem__, ordered))
        product = sum(map(product_weights.__getitem__, ordered))
        return (admin if admin > 0.0 else 0.0), (product if product > 0.0 else 0.0)

    @staticmethod
    def _by_rules(
        admin: float,
        product: float,
        matches: tuple[RuleMatch, ...],
        language: str | None,
        min_confidence: float,
    ) -> Classification:
        if admin == product:
            return Classification(_UNKNOWN, 0.0, _TEXT, matches, language)
        if admin > product:
            category, confidence = _ADMIN, round(admin / (admin + product + EVIDENCE_PRIOR), 4)
        else:
            category, confidence = _PRODUCT, round(product / (admin + product + EVIDENCE_PRIOR), 4)
        if confidence < min_confidence:
            category = _UNKNOWN
        return Classification(category, confidence, _TEXT, matches, language)

    def _decide(
        self, found: set[int], language: str | None, min_confidence: float
    ) -> Classification:
        ordered = self._matched(found)
        admin, product = self._totals(ordered, self._admin_weights, self._product_weights)
        matches = tuple(map(self._outcomes.__getitem__, ordered))
        return self._by_rules(admin, product, matches, language, min_confidence)

    def _decide_with_model(
        self,
        text: str,
        found: set[int],
        language: str | None,
        min_confidence: float,
        word_total: float,
        count: int,
        strongest: Sequence[tuple[float, float, str] | None],
        factors: tuple[float, tuple[float, ...]],
    ) -> Classification:
        """Operators' rules decide where they match and do not tie; else the model, with
        the shipped rules' totals among its inputs; where it does not say admin (or says it
        below *min_confidence*), service phrases that outweigh the rules' product evidence
        say admin (:meth:`_as_service`)."""
        ordered = self._matched(found)
        matches = tuple(map(self._outcomes.__getitem__, ordered))
        if self._has_overrides:
            chosen = self._totals(ordered, self._override_admin, self._override_product)
            if chosen[0] != chosen[1]:
                # an operator's rule is an instruction, not evidence: no threshold applies
                return self._by_rules(*chosen, matches, language, 0.0)
        if not count:  # no words at all (punctuation, emoji): nothing to go by
            return Classification(_UNKNOWN, 0.0, _TEXT, matches, language)
        admin, product = self._totals(ordered, self._admin_weights, self._product_weights)
        word_factor, signal_factors = factors
        z, contributions = combine(
            word_factor, signal_factors, word_total, signals(admin, product, count), count
        )
        p = TextModel.probability(z)
        # the service phrases where the model does not say admin, or says it too weakly
        if self.service is not None and (z >= 0 or round(1.0 - p, 4) < min_confidence):
            service = self._as_service(text, admin, product, matches, language, min_confidence)
            if service is not None:
                return service
        if not z:
            return Classification(_UNKNOWN, 0.0, _TEXT, matches, language)
        category, confidence = (_PRODUCT, p) if z > 0 else (_ADMIN, 1.0 - p)
        # the explanation: the words and signals that moved the logit most, by how much
        root = math.sqrt(count)
        moved = [
            (abs(c), c, name) for c, name in zip(contributions, _SIGNAL_NAMES, strict=True) if c
        ]
        if word_factor:  # (a positive factor: the strongest words stay the strongest)
            # (sorted() beats heapq.nlargest here: some fifty items, no key function)
            moved += [
                (word_factor * size, word_factor * value, word)
                for size, value, word in sorted(filter(None, strongest))[-MODEL_MATCHES:]
            ]
        moved.sort(reverse=True)
        explained = tuple(
            [
                _new_match((name, _PRODUCT if value > 0 else _ADMIN, round(size / root, 4)))
                for size, value, name in moved[:MODEL_MATCHES]
            ]
        )
        confidence = round(confidence, 4)
        if confidence < min_confidence:
            category = _UNKNOWN
        return Classification(category, confidence, _TEXT, matches + explained, language)

    def _as_service(
        self,
        text: str,
        admin: float,
        product: float,
        matches: tuple[RuleMatch, ...],
        language: str | None,
        min_confidence: float,
    ) -> Classification | None:
        """Admin, when *text* is about the shop's service: a service phrase matched, and
        with it the rules' *admin* evidence outweighs their *product* evidence, weighed as
        the rules are without a model, with a confidence of at least *min_confidence*;
        else None (the model decides). Its matches come first, marked ``service:``, then
        the shipped rules' (*matches*)."""
        assert self.service is not None
        found = self.service.classify(text, language)
        if found.category is not _ADMIN:
            return None
        admin += math.fsum(m.weight for m in found.matches if m.category is _ADMIN)
        if admin <= product:
            return None
        confidence = round(admin / (admin + product + EVIDENCE_PRIOR), 4)
        if confidence < min_confidence:
            return None
        marked = tuple(
            _new_match((f"{SERVICE_PREFIX}{m.rule}", m.category, m.weight)) for m in found.matches
        )
        return Classification(_ADMIN, confidence, _TEXT, marked + matches, language)

    def knows(self, text: str) -> bool:
        """Whether any rule mentions a word of *text* (as a word of a phrase, too), or the
        model has a weight for a feature of one: a text it does not know changes no
        category when added to a message (nor, without a model, any confidence)."""
        if any(any(chunk.terms) for chunk in self._chunks(text)):
            return True
        if self.service is not None and self.model is not None and self.service.knows(text):
            return True
        model = self.model
        return model is not None and any(model.knows(word) for word in words(text))

    def language(self, text: str) -> str | None:
        """The detected language of *text* (None when nothing hints at one)."""
        return _best_language(chunk.votes for chunk in self._chunks(text)[:_VOTE_CHUNKS])


# A chunk's language votes are packed into one integer, a fixed-point field per language,
# so that a message's votes add up in one C-level sum().
_VOTE_SCALE = 100
_VOTE_BITS = 32
_VOTE_FIELDS = struct.Struct(f"<{len(classify_lang.LANGUAGES)}I")
_VOTE_CHUNKS = 2000  # the language is told from at most this many chunks…
_VOTE_MAX = (1 << _VOTE_BITS) // (2 * _VOTE_CHUNKS)  # …each voting at most this: no overflow


def _pack(votes: Mapping[str, float]) -> int:
    packed = 0
    for index, lang in enumerate(classify_lang.LANGUAGES):
        vote = min(round(max(votes.get(lang, 0.0), 0.0) * _VOTE_SCALE), _VOTE_MAX)
        packed |= vote << (_VOTE_BITS * index)
    return packed


def _word_terms(chunks: list[_Chunk], index: int, offset: int) -> frozenset[int]:
    """The terms of the word *offset* words from the start of chunk *index* (none when that
    is off the message)."""
    while offset < 0:
        index -= 1
        if index < 0:
            return _NO_TERMS
        offset += len(chunks[index].terms)
    while index < len(chunks):
        words = chunks[index].terms
        if offset < len(words):
            return words[offset]
        offset -= len(words)
        index += 1
    return _NO_TERMS


def _best_language(votes: Iterable[int]) -> str | None:
    """The language with the most *votes* (packed, one per chunk), or None."""
    total = sum(votes)
    if not total:
        return None
    scores = _VOTE_FIELDS.unpack(total.to_bytes(_VOTE_FIELDS.size, "little"))
    return classify_lang.LANGUAGES[scores.index(max(scores))]  # the first of equals wins


def _language_tag(lang: str) -> str:
    """``cs-CZ`` -> ``cs``."""
    return lang.replace("_", "-").split("-", 1)[0].lower()


_CacheKey = tuple[TextModel | None, "Classifier | None"]
_COMPILED_BY_ID: dict[tuple[int, _CacheKey], tuple[tuple[Rule, ...], Classifier]] = {}
_COMPILED_BY_VALUE: dict[tuple[tuple[Rule, ...], _CacheKey], Classifier] = {}
_COMPILED_LIMIT = 16


def compile_rules(
    rules: Iterable[Rule] | Classifier,
    model: TextModel | None = None,
    service: Classifier | None = None,
) -> Classifier:
    """The compiled form of *rules* (with *model* and *service*, when given); cached, so
    calling it per message is cheap when the same tuple of rules is passed each time (as
    routing does). A :class:`Classifier` is returned as it is, unless another *model* or
    *service* is given."""
    if isinstance(rules, Classifier):
        if (model is None or model is rules.model) and (
            service is None or service is rules.service
        ):
            return rules
        model = model if model is not None else rules.model
        service = service if service is not None else rules.service
        rules = rules.rules
    extras: _CacheKey = (model, service)
    if type(rules) is tuple:
        known = _COMPILED_BY_ID.get((id(rules), extras))
        if known is not None and known[0] is rules:
            return known[1]
        key: tuple[Rule, ...] = rules
    else:
        key = tuple(rules)
    compiled = _COMPILED_BY_VALUE.get((key, extras))
    if compiled is None:
        compiled = Classifier(key, model, service)
        if len(_COMPILED_BY_VALUE) >= _COMPILED_LIMIT:
            _COMPILED_BY_VALUE.pop(next(iter(_COMPILED_BY_VALUE)))
        _COMPILED_BY_VALUE[key, extras] = compiled
    if len(_COMPILED_BY_ID) >= _COMPILED_LIMIT:
        _COMPILED_BY_ID.pop(next(iter(_COMPILED_BY_ID)))
    _COMPILED_BY_ID[id(key), extras] = (key, compiled)
    return compiled


def classify(
    text: str,
    rules: Iterable[Rule] | Classifier,
    lang: str | None = None,
    *,
    min_confidence: float = 0.0,
    model: TextModel | None = None,
) -> Classification:
    """Classify *text* with *rules* and, when given, *model* (see the module doc). *lang*
    (``cs``, ``cs-CZ`` …), when known, is reported as the result's language instead of the
    detected one; it changes no category, except with a model for a text whose own language
    cannot be detected (then the hint says how far the model's words are trusted)."""
    return compile_rules(rules, model).classify(text, lang, min_confidence=min_confidence)


# -- loading --------------------------------------------------------------------------------


def rules_from_data(data: Mapping[str, object], lang: str | None = None) -> tuple[Rule, ...]:
    """Rules from one rules file: ``{lang?: xx, admin: {phrase: weight}, product: …}``."""
    declared = data.get("lang", lang)
    if declared is not None and not isinstance(declared, str):
        raise ValueError("lang: expected a language code such as 'cs'")
    unknown = set(data) - {"lang", "admin", "product"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}: expected lang, admin, product")
    rules: list[Rule] = []
    for category in _DECISIVE:
        entries = data.get(category.value) or {}
        if not isinstance(entries, Mapping):
            raise ValueError(f"{category.value}: expected a map of phrase to weight")
        for phrase, weight in entries.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ValueError(f"{category.value}.{phrase}: weight must be a number")
            rules.append(Rule(fold(str(phrase)), category, float(weight), declared))
    return tuple(rules)


def _read_yaml(path: Path) -> Mapping[str, object]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a map")
    return data


@cache
def load_rules(path: Path) -> tuple[Rule, ...]:
    """The rules in *path* (read once per process): a rules file, an index file
    (``include: [cs.yaml, …]``, paths relative to it), or a directory: its index files if it
    has any (``keywords.yaml`` in the shipped one), else every ``*.yaml`` in it, in name
    order."""
    if path.is_dir():
        files = sorted(path.glob("*.yaml"))
        indexes = [child for child in files if "include" in _read_yaml(child)]
        return tuple(rule for child in indexes or files for rule in load_rules(child))
    data = _read_yaml(path)
    if "include" in data:
        included = data["include"]
        if not isinstance(included, list) or set(data) != {"include"}:
            raise ValueError(f"{path}: an index holds only 'include: [file, …]'")
        return tuple(rule for name in included for rule in load_rules(path.parent / str(name)))
    try:
        return rules_from_data(data, path.stem if len(path.stem) <= 3 else None)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def rules_digest(rules: Iterable[Rule]) -> str:
    """SHA-256 over *rules* as the model's signals see them (phrase, category, weight, in
    order): a model records the digest of the rules it was trained with, since its signals'
    weights mean nothing for other rules."""
    digest = hashlib.sha256()
    for rule in rules:
        digest.update(f"{rule.phrase}\0{rule.category.value}\0{rule.weight!r}\n".encode())
    return digest.hexdigest()


def shipped_rules() -> tuple[Rule, ...]:
    """Every shipped rule (``config/classifier/*.yaml``), the same tuple on every call."""
    from router.core.shipped import shipped_path

    return load_rules(shipped_path("classifier"))


#: The shipped model's file under ``config/`` (built by ``make train-classifier``).
MODEL_FILE = "classifier/model.json.gz"


@cache
def shipped_model() -> TextModel:
    """The shipped model (``config/classifier/model.json.gz``), read once per process."""
    from router.core.shipped import shipped_path

    return load_model(shipped_path(MODEL_FILE))


#: The shipped service phrases' file under ``config/`` (see :func:`shipped_service`).
SERVICE_FILE = "classifier/service.yaml"
#: How a service phrase is named among a result's matches.
SERVICE_PREFIX = "service:"


@cache
def shipped_service() -> Classifier:
    """The shipped service phrases (``config/classifier/service.yaml``), compiled: contacts
    about the shop's service rather than a purchase (a person to talk to, a call back,
    opening hours, a complaint, the profile, a discount code, a move). They name no product,
    so no rule matches them, and the model, whose unmatched training messages were nearly
    all product questions, leans to product there. Not the model's inputs (those are
    :func:`shipped_rules`, which the model was trained with), so they can change without
    retraining it."""
    from router.core.shipped import shipped_path

    return compile_rules(load_rules(shipped_path(SERVICE_FILE)))


def shipped_classifier(rules: Iterable[Rule] | None = None) -> Classifier:
    """*rules* (default: the shipped ones) compiled with the shipped model and service
    phrases: what routing, the API and the CLI classify with. An operator's rule with a
    service phrase's words replaces that phrase."""
    chosen = shipped_rules() if rules is None else tuple(rules)
    return compile_rules(chosen, shipped_model(), _service_for(chosen))


def _service_for(rules: tuple[Rule, ...]) -> Classifier:
    """The shipped service phrases less those an operator's rule in *rules* names."""
    service = shipped_service()
    named = {_phrase_key(rule.phrase) for rule in rules if rule.override}
    if not named:
        return service
    kept = tuple(rule for rule in service.rules if _phrase_key(rule.phrase) not in named)
    return service if len(kept) == len(service.rules) else compile_rules(kept)


def _phrase_key(phrase: str) -> str:
    """A rule's phrase as the classifier tells phrases apart (folded, single spaces)."""
    return " ".join(fold(phrase).split())


# -- evaluation -------------------------------------------------------------------------------


class Example(NamedTuple):
    """One labelled message; *line* is its line in the file it came from (1-based);
    *source* names the data set it came from, when known."""

    text: str
    label: Category
    lang: str | None = None
    line: int = 0
    source: str | None = None


def parse_examples(lines: Iterable[str]) -> list[Example]:
    """Examples from JSON lines ``{"text", "label", "lang"?, "source"?}`` (blank lines
    skipped; other keys ignored).

    Raises ValueError naming the line of the first bad one."""
    examples: list[Example] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise ValueError(f"line {number}: expected an object with text and label")
        text, label, lang = item.get("text"), item.get("label"), item.get("lang")
        source = item.get("source")
        if not isinstance(text, str):
            raise ValueError(f"line {number}: 'text' must be a string")
        if label not in {c.value for c in Category}:
            raise ValueError(f"line {number}: 'label' must be admin, product or unknown")
        if lang is not None and not isinstance(lang, str):
            raise ValueError(f"line {number}: 'lang' must be a string")
        if source is not None and not isinstance(source, str):
            raise ValueError(f"line {number}: 'source' must be a string")
        examples.append(Example(text, Category(label), lang, number, source))
    return examples


@dataclass(frozen=True, slots=True)
class EvalResult:
    line: int
    label: Category
    category: Category
    confidence: float
    language: str | None  # the example's lang, else the detected language
    text: str = ""
    source: str | None = None

    @property
    def correct(self) -> bool:
        return self.label is self.category


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _group_stats(group: Sequence[EvalResult]) -> dict[str, Any]:
    return {
        "total": len(group),
        "correct": sum(r.correct for r in group),
        "accuracy": _ratio(sum(r.correct for r in group), len(group)),
        "categories": _category_stats(group),
    }


def _category_stats(results: Sequence[EvalResult]) -> dict[str, dict[str, Any]]:
    labels = {r.label for r in results}
    stats: dict[str, dict[str, Any]] = {}
    for category in Category:
        if category not in _DECISIVE and category not in labels:
            continue
        support = sum(r.label is category for r in results)
        predicted = sum(r.category is category for r in results)
        right = sum(r.label is category and r.correct for r in results)
        stats[category.value] = {
            "precision": _ratio(right, predicted),
            "recall": _ratio(right, support),
            "support": support,
            "predicted": predicted,
        }
    return stats


@dataclass(frozen=True, slots=True)
class EvalReport:
    results: tuple[EvalResult, ...]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.results)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.correct, self.total)

    def categories(self) -> dict[str, dict[str, Any]]:
        return _category_stats(self.results)

    def languages(self) -> dict[str, dict[str, Any]]:
        grouped: dict[str, list[EvalResult]] = {}
        for result in self.results:
            grouped.setdefault(result.language or "?", []).append(result)
        order = {lang: i for i, lang in enumerate(classify_lang.LANGUAGES)}
        return {
            lang: _group_stats(group)
            for lang, group in sorted(grouped.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))
        }

    def sources(self) -> dict[str, dict[str, Any]]:
        """Per source, for the examples that name one (empty when none does)."""
        grouped: dict[str, list[EvalResult]] = {}
        for result in self.results:
            if result.source is not None:
                grouped.setdefault(result.source, []).append(result)
        return {source: _group_stats(grouped[source]) for source in sorted(grouped)}

    def confusion(self) -> dict[str, dict[str, int]]:
        """Rows: the labels present; columns: every category."""
        labels = [c for c in Category if any(r.label is c for r in self.results)]
        return {
            label.value: {
                c.value: sum(r.label is label and r.category is c for r in self.results)
                for c in Category
            }
            for label in labels
        }

    def errors(self) -> list[EvalResult]:
        return [r for r in self.results if not r.correct]

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "categories": self.categories(),
            "languages": self.languages(),
            "sources": self.sources(),
            "confusion": self.confusion(),
            "results": [
                {
                    "line": r.line,
                    "label": r.label.value,
                    "category": r.category.value,
                    "confidence": r.confidence,
                    "language": r.language,
                }
                for r in self.results
            ],
        }


ClassifyFn = Callable[[str, str | None], Classification]


def evaluate(
    examples: Iterable[Example | tuple[str, str, str | None]], classify_fn: ClassifyFn
) -> EvalReport:
    """Run *classify_fn(text, lang)* over labelled *examples*, in order.

    An example is an :class:`Example` or a ``(text, label, lang)`` tuple; tuples are
    numbered 1, 2, … in the results."""
    results: list[EvalResult] = []
    for index, example in enumerate(examples, start=1):
        if isinstance(example, Example):
            text, label, lang, line, source = example
        else:
            text, raw_label, lang = example
            label, line, source = Category(raw_label), index, None
        result = classify_fn(text, lang)
        results.append(
            EvalResult(
                line=line or index,
                label=Category(label),
                category=result.category,
                confidence=result.confidence,
                language=lang or result.language,
                text=text,
                source=source,
            )
        )
    return EvalReport(tuple(results))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    yield line(headers)
    yield from (line(row) for row in rows)


def render_report(report: EvalReport) -> str:
    """The report as text: accuracy, per category, per language, per source (when the
    examples name theirs), confusion matrix."""
    out = [f"accuracy: {_percent(report.accuracy)} ({report.correct}/{report.total})", ""]
    categories = report.categories()
    out += _table(
        ["category", "precision", "recall", "support"],
        [
            [name, _percent(s["precision"]), _percent(s["recall"]), str(s["support"])]
            for name, s in categories.items()
        ],
    )
    names = list(categories)
    headers = ["n", "accuracy"]
    for name in names:
        headers += [f"{name} P", f"{name} R"]
    for title, groups in (("language", report.languages()), ("source", report.sources())):
        if not groups:
            continue
        rows = []
        for name, stats in groups.items():
            row = [name, str(stats["total"]), _percent(stats["accuracy"])]
            for category in names:
                s = stats["categories"].get(category, {"precision": None, "recall": None})
                row += [_percent(s["precision"]), _percent(s["recall"])]
            rows.append(row)
        out += ["", *_table([title, *headers], rows)]
    out += ["", "confusion (rows: label, columns: classified as)"]
    confusion = report.confusion()
    columns = [c.value for c in Category]
    out += _table(
        ["label", *columns],
        [[label, *(str(row[c]) for c in columns)] for label, row in confusion.items()],
    )
    return "\n".join(out)
