"""Where one contact goes: SPEC §3 steps 1–5 as pure functions.

Everything that affects a routing decision lives here, and nothing here does I/O or reads
the clock: the document, the time and the classifier rules are arguments, so the same
inputs always give the same :class:`Decision`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from router.core.classify import Classification, Classifier, Rule, classify, fold
from router.core.contact import Category, CategorySource, Channel, Contact, Reason, Side
from router.core.document import RoutingDocument


@dataclass(frozen=True, slots=True)
class Decision:
    category: Category
    category_source: CategorySource
    side: Side
    destination: str
    reason: Reason
    version: int
    bucket: float
    rule: str | None = None
    confidence: float | None = None


_BUCKET_SPACE = 2**64


def bucket(customer_key: str) -> float:
    """The customer's place in [0, 100), from the key alone.

    Stickiness across channels and releases depends on this never changing: it is the first
    8 bytes of SHA-256 over the UTF-8 key, read big-endian, scaled to [0, 100). No secret is
    involved on purpose, so every replica and every release agrees. A customer is on the
    target side when ``bucket(key) < share``, so raising a share only ever adds customers.
    """
    digest = hashlib.sha256(customer_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") * 100 / _BUCKET_SPACE


def routing_rules(shipped: Iterable[Rule], document: RoutingDocument) -> tuple[Rule, ...]:
    """The shipped rules plus the document's own (which override the model where they
    match); built once per routing version."""
    extra = (
        Rule(fold(rule.phrase), Category(rule.category), rule.weight, rule.lang, override=True)
        for rule in document.classifier.rules
    )
    return (*shipped, *extra)


def stored_bucket(customer_bucket: float) -> float:
    """The bucket as it is stored and logged: floored to 0.01.

    The full value is 53 bits of an unkeyed hash of the phone number, enough to find the
    number again by trying a national numbering plan; 10 000 buckets are not. Flooring
    keeps ``stored < share`` exactly equal to ``bucket < share`` for every share written
    with at most two decimals, so impact previews replay the same sides."""
    return math.floor(customer_bucket * 100) / 100


def categorize(
    contact: Contact, document: RoutingDocument, rules: Iterable[Rule] | Classifier
) -> Classification:
    """Step 1: the category of *contact* and how it was decided.

    *rules* are all rules in force (see :func:`routing_rules`), or the classifier compiled
    from them with the model."""
    threshold = document.classifier.min_confidence
    if contact.thread_category is not None:
        return Classification(contact.thread_category, 1.0, CategorySource.THREAD)
    if contact.channel is Channel.PHONE:
        ivr = document.ivr
        if ivr is not None and contact.digits and contact.digits in ivr.digits:
            return Classification(ivr.digits[contact.digits], 1.0, CategorySource.DIGIT)
        no_input = ivr.no_input if ivr is not None else Category.UNKNOWN
        if contact.text.strip():
            spoken = classify(contact.text, rules, contact.language, min_confidence=threshold)
            if spoken.category is not Category.UNKNOWN:
                return spoken._replace(source=CategorySource.SPEECH)
        return Classification(no_input, 1.0, CategorySource.NO_INPUT)
    return classify(contact.text, rules, contact.language, min_confidence=threshold)


def decide(
    contact: Contact,
    classification: Classification,
    document: RoutingDocument,
    now: datetime,
    *,
    version: int,
) -> Decision:
    """Steps 2–4: side from the bucket and the cut-over share, destination, opening hours."""
    customer_bucket = bucket(contact.customer_key)
    side, destination, reason = place(
        contact.channel, classification.category, customer_bucket, document, now
    )
    return Decision(
        category=classification.category,
        category_source=classification.source,
        side=side,
        destination=destination,
        reason=reason,
        version=version,
        bucket=customer_bucket,
        rule=classification.rule,
        confidence=classification.confidence,
    )


def place(
    channel: Channel,
    category: Category,
    customer_bucket: float,
    document: RoutingDocument,
    now: datetime,
) -> tuple[Side, str, Reason]:
    """Side, destination and reason for a customer in *customer_bucket* (steps 2–4).

    Impact previews replay recorded contacts through this with their stored bucket."""
    side = Side.TARGET if customer_bucket < document.share(channel, category) else Side.BASELINE
    destination = document.route(side, category)
    reason = Reason.TARGET if side is Side.TARGET else Reason.BASELINE
    if not document.is_open(destination, now):
        fallback = document.fallback_for(destination)
        if fallback is not None and document.is_open(fallback, now):
            destination, reason = fallback, Reason.AFTER_HOURS
        else:
            reason = Reason.CLOSED
    return side, destination, reason


def unanswered_fallback(destination: str, document: RoutingDocument, now: datetime) -> str | None:
    """Step 5: where a call goes when *destination* did not answer, or None for voicemail.

    The fallback is tried once, and only while it is open: dialling a closed hotline would
    just fail a second time and keep the caller waiting.
    """
    fallback = document.fallback_for(destination)
    if fallback is None or fallback == destination or not document.is_open(fallback, now):
        return None
    return fallback
