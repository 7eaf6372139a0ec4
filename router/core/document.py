"""The routing document (SPEC §2): its shape, its validation, and the questions asked of it.

Everything that decides whether a document is acceptable lives here, so the CLI
(``config validate``), the HTTP API (``PUT /api/routing`` answering 422) and the first start
from ``config/routing.yaml`` reject exactly the same documents with exactly the same
problems, each named by a dotted path (``destinations.partner.phone``,
``cutover.email.admin``, ``classifier.rules[2].weight``, ``destinations.hotline.hours.closed[0]``).

Documents are immutable values (frozen pydantic models). A change is a new document: build
it with ``validate_document({**document_data(doc), ...})`` rather than ``model_copy``, so the
derived state (parsed hours, zone) and every cross-reference rule are checked again.

Callers ask the document questions (``share``, ``route``, ``is_open``, ``ivr_language``…)
instead of reading its raw maps. This module must not import the store, the service, aiohttp
or ``integrations/``; its only I/O is ``load_document`` and ``shipped_document``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from router.core.contact import Category, Channel, Side
from router.core.durations import parse_duration
from router.core.hours import ALWAYS, HoursError, OpeningHours, parse_hours
from router.core.jsondata import check_parsed, parse_json
from router.core.problems import Problem, problems_of
from router.core.shipped import shipped_path
from router.core.stored import canonical_json

__all__ = [
    "DEFAULT_LANGUAGE",
    "Change",
    "ClassifierConfig",
    "ClassifierRule",
    "Costs",
    "Cutover",
    "CutoverShares",
    "Destination",
    "DocumentInvalid",
    "ForwardTargets",
    "Guard",
    "InHouseCosts",
    "Ivr",
    "PhoneTargets",
    "Problem",
    "Routes",
    "RoutingDocument",
    "Share",
    "SlaTargets",
    "diff_documents",
    "document_data",
    "document_json",
    "load_document",
    "parse_document",
    "shipped_document",
    "validate_document",
]

DEFAULT_LANGUAGE = "en-US"  # the IVR language when a document has no ivr section

# Used only when the document has no text for the caller's language nor for its default
# language, so a caller always hears something sensible.
_BUILTIN_PROMPT = (
    "Hello, thank you for calling. For a question about an order, delivery, a return or a "
    "payment, press 1 or say it. For a question about a product, press 2."
)
_BUILTIN_VOICEMAIL = (
    "We are sorry, nobody can take your call right now. Please leave a message after the "
    "tone and we will call you back."
)
_BUILTIN_GOODBYE = "Thank you for calling. Goodbye."
_BUILTIN_ACKNOWLEDGEMENT = "Thank you for your message. We will get back to you shortly."

DOCUMENT_PATH = "(document)"  # the path of a problem with the document as a whole


class DocumentInvalid(ValueError):
    """A rejected document, with every problem found (not just the first)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{p.path}: {p.message}" for p in problems))


# --- field types -------------------------------------------------------------------------

_E164 = re.compile(r"\+[1-9][0-9]{7,14}")  # E.164: "+", no leading 0, 8-15 digits in all
_SIP = re.compile(r"sip:(?:[^\s@:;]+@)?[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:;\S*)?")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # no dots: names appear in dotted paths
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")  # BCP 47, as Twilio takes it
_PHONE_PREFIX = re.compile(r"\+[0-9]{1,15}")
_CLASSIFIER_LANG = re.compile(r"^[a-z]{2,3}$")  # ISO 639, as `classify --lang` takes it
_DTMF_KEYS = frozenset("0123456789*#")


def _phone(value: str) -> str:
    if _E164.fullmatch(value) or _SIP.fullmatch(value):
        return value
    raise ValueError(
        f"not an E.164 number ('+' and 8 to 15 digits, e.g. +420800100200) "
        f"nor a sip: URI: {value!r}"
    )


def _email(value: str) -> str:
    if _EMAIL.fullmatch(value):
        return value
    raise ValueError(f"not an email address: {value!r}")


def _chat_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname and not re.search(r"\s", value):
        return value
    raise ValueError(f"not an http:// or https:// URL: {value!r}")


def _destination_name(value: str) -> str:
    if _NAME.fullmatch(value):
        return value
    raise ValueError(
        f"{value!r} is not a destination name: use letters, digits, '_' and '-' (at most 64)"
    )


def _language_tag(value: str) -> str:
    if _LANGUAGE_TAG.fullmatch(value):
        return value
    raise ValueError(f"not a language tag such as cs-CZ: {value!r}")


def _phone_prefix(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML reads an unquoted +420 as the number 420, losing the "+".
        raise ValueError(f'{value} is a number: quote the prefix, e.g. "+{value}"')
    if isinstance(value, str) and (value == "default" or _PHONE_PREFIX.fullmatch(value)):
        return value
    raise ValueError(f'not a number prefix such as "+420", nor "default": {value!r}')


def _dtmf_key(value: object) -> object:
    # YAML reads an unquoted `1: admin` with the integer key 1; for one digit that is
    # unambiguous, so it is accepted as the key "1".
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    if isinstance(value, str) and value in _DTMF_KEYS:
        return value
    raise ValueError(f"not a phone key (one of 0-9, * or #): {value!r}")


def _not_blank(value: str) -> str:
    if value.strip():
        return value
    raise ValueError("must not be empty")


def _decisive(value: Category) -> Category:
    if value is Category.UNKNOWN:
        raise ValueError("a rule must decide something: admin or product")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not an IANA time zone such as Europe/Prague: {value!r}") from None
    return value


def _duration(value: str) -> str:
    parse_duration(value)  # ValueError with the accepted spellings
    return value


def _empty_if_none(value: object) -> object:
    # `cutover:` with nothing after it is YAML for null; it means "nothing here", not an error.
    return {} if value is None else value


def _compact(value: float) -> int | float:
    # 25.0 is shown as 25: shares are whole percentages almost always, and the JSON and YAML
    # then read the way operators wrote them.
    return int(value) if value.is_integer() else value


def _json_hours(value: object) -> object:
    # YAML reads unquoted dates in `closed` as datetime.date; the raw value is kept for the
    # round trip, so it is kept in its JSON form (ISO strings).
    if isinstance(value, Mapping) and isinstance(value.get("closed"), list):
        closed = [
            item.isoformat() if isinstance(item, date) and not isinstance(item, datetime) else item
            for item in value["closed"]
        ]
        return {**value, "closed": closed}
    return value


_Text = Annotated[str, Field(strict=True), AfterValidator(_not_blank)]
_Name = Annotated[str, Field(strict=True), AfterValidator(_destination_name)]
_Reference = Annotated[str, Field(strict=True)]  # checked against destinations as a whole
_LanguageTag = Annotated[str, Field(strict=True), AfterValidator(_language_tag)]
#: A cut-over share: a percentage of customers on target routing.
Share = Annotated[
    float,
    Field(strict=True, ge=0, le=100, allow_inf_nan=False),
    PlainSerializer(_compact, return_type=int | float),
]
_Price = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
_Rate = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
_Duration = Annotated[str, Field(strict=True), AfterValidator(_duration)]


class _Model(BaseModel):
    # Unknown keys are errors (a typo must not be silently ignored) and documents are values.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the models ----------------------------------------------------------------------------


class Destination(_Model):
    """A team: its kind, its address per channel, its opening hours (raw, as written)."""

    kind: Literal["external", "in_house"]
    phone: Annotated[str, Field(strict=True), AfterValidator(_phone)] | None = None
    email: Annotated[str, Field(strict=True), AfterValidator(_email)] | None = None
    chat: Annotated[str, Field(strict=True), AfterValidator(_chat_url)] | None = None
    hours: Any = "always"  # "always" or a mapping, see router.core.hours; kept for the round trip
    # record the calls dialled to it (from answer, both parties); absent means false, and
    # stays absent, so documents written before it keep their canonical JSON (and ETags)
    record: Annotated[bool, Field(strict=True)] | None = None
    _opening_hours: OpeningHours = PrivateAttr(default=ALWAYS)

    @field_validator("hours", mode="before")
    @classmethod
    def _valid_hours(cls, value: object) -> object:
        value = _json_hours(value)
        try:
            parse_hours(value)
        except HoursError as error:
            # One error carrying every sub-problem; problems_of() expands it into one Problem
            # per sub-path (destinations.hotline.hours.mon-fri, ….closed[1]).
            raise PydanticCustomError(
                "hours", "{summary}", {"summary": str(error), "problems": error.problems}
            ) from None
        return value

    def model_post_init(self, context: Any, /) -> None:
        self._opening_hours = parse_hours(self.hours)

    @property
    def opening_hours(self) -> OpeningHours:
        return self._opening_hours

    @property
    def is_external(self) -> bool:
        return self.kind == "external"

    @property
    def records_calls(self) -> bool:
        return self.record is True

    def address(self, channel: Channel) -> str | None:
        address: str | None = getattr(self, channel.value)
        return address


class Routes(_Model):
    """Category -> destination name, for one side (baseline or target)."""

    admin: _Reference
    product: _Reference
    unknown: _Reference

    def destination(self, category: Category) -> str:
        name: str = getattr(self, category.value)
        return name


class CutoverShares(_Model):
    """Category -> percentage routed by target, for one channel; missing = 0."""

    admin: Share = 0.0
    product: Share = 0.0
    unknown: Share = 0.0

    def share(self, category: Category) -> float:
        share: float = getattr(self, category.value)
        return share


_Shares = Annotated[CutoverShares, BeforeValidator(_empty_if_none)]


class Cutover(_Model):
    """The share matrix, always complete: a channel or category not written is 0."""

    phone: _Shares = Field(default_factory=CutoverShares)
    email: _Shares = Field(default_factory=CutoverShares)
    chat: _Shares = Field(default_factory=CutoverShares)

    def share(self, channel: Channel, category: Category) -> float:
        shares: CutoverShares = getattr(self, channel.value)
        return shares.share(category)


class Messaging(_Model):
    """SMS/WhatsApp: the short acknowledgement a customer gets, per language (the language
    is picked from the number like the IVR's)."""

    acknowledgement: dict[_LanguageTag, _Text] = Field(default_factory=dict)


class Ivr(_Model):
    """The phone menu: keys, languages by caller number, and what is said in each."""

    digits: dict[Annotated[str, BeforeValidator(_dtmf_key)], Category]
    no_input: Category = Category.UNKNOWN  # nothing pressed or said: "nothing decided it"
    languages: dict[Annotated[str, BeforeValidator(_phone_prefix)], _LanguageTag] = Field(
        default_factory=lambda: {"default": DEFAULT_LANGUAGE}
    )
    prompts: dict[_LanguageTag, _Text]
    voicemail: dict[_LanguageTag, _Text] = Field(default_factory=dict)
    goodbye: dict[_LanguageTag, _Text] = Field(default_factory=dict)


class ClassifierRule(_Model):
    """An operator's phrase for the text classifier (added to the shipped rules)."""

    phrase: _Text
    category: Annotated[Category, AfterValidator(_decisive)]
    weight: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = 1.0
    lang: Annotated[str, Field(strict=True, pattern=_CLASSIFIER_LANG.pattern)] | None = None


class ClassifierConfig(_Model):
    rules: list[ClassifierRule] = Field(default_factory=list)
    min_confidence: _Rate = 0.0


class InHouseCosts(_Model):
    hourly: _Price  # cost of one staffed hour
    per_hour: dict[Channel, Annotated[int, Field(strict=True, gt=0)]]  # contacts handled/hour


class Costs(_Model):
    """Prices for reports; a channel missing from a map has no known price."""

    currency: Annotated[str, Field(strict=True, pattern=r"^[A-Z]{3}$")]
    partner: dict[Channel, _Price]  # price per handled interaction, external destinations
    in_house: InHouseCosts


class Guard(_Model):
    """Automatic rollback of one channel when external delivery keeps failing (SPEC §4).

    The durations stay strings as written (``15m``); ``window_duration`` and
    ``rollback_duration`` give them as timedeltas.
    """

    window: _Duration = "15m"
    min_contacts: Annotated[int, Field(strict=True, ge=1)] = 20
    max_failure_rate: _Rate = 0.25
    rollback_for: _Duration = "24h"

    @property
    def window_duration(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def rollback_duration(self) -> timedelta:
        return parse_duration(self.rollback_for)


_Rating = Annotated[float, Field(strict=True, ge=1, le=5, allow_inf_nan=False)]


class ForwardTargets(_Model):
    """What an external destination promises for the email or chat contacts forwarded to
    it (every target optional; router.core.sla measures them)."""

    answer_rate: _Rate | None = None  # forwards delivered / forwards sent
    resolution_rate: _Rate | None = None  # partner feedback "resolved" / feedback received
    average_rating: _Rating | None = None  # mean of the partner's ratings, 1-5


class PhoneTargets(ForwardTargets):
    """The phone targets: those of a forward, and how fast a dialled call is answered."""

    time_to_answer_p80: _Duration | None = None  # 80 % of answered dials within this

    @property
    def time_to_answer_seconds(self) -> float | None:
        if self.time_to_answer_p80 is None:
            return None
        return parse_duration(self.time_to_answer_p80).total_seconds()


class SlaTargets(_Model):
    """The service levels agreed with one external destination, per channel."""

    phone: PhoneTargets | None = None
    email: ForwardTargets | None = None
    chat: ForwardTargets | None = None

    def targets(self, channel: Channel) -> ForwardTargets | None:
        targets: ForwardTargets | None = getattr(self, channel.value)
        return targets


class RoutingDocument(_Model):
    """One version of the routing: validated, complete, immutable."""

    timezone: Annotated[str, Field(strict=True), AfterValidator(_timezone)]
    destinations: dict[Annotated[str, AfterValidator(_destination_name)], Destination]
    baseline: Routes
    target: Routes
    fallback: Annotated[dict[_Name, _Reference], BeforeValidator(_empty_if_none)] = Field(
        default_factory=dict
    )
    cutover: Annotated[Cutover, BeforeValidator(_empty_if_none)] = Field(default_factory=Cutover)
    ivr: Ivr | None = None
    messaging: Messaging | None = None
    classifier: Annotated[ClassifierConfig, BeforeValidator(_empty_if_none)] = Field(
        default_factory=ClassifierConfig
    )
    costs: Costs | None = None
    guard: Guard | None = None  # None: no automatic rollback
    # external destination -> its targets; None (or empty): no service levels to assess
    sla: dict[_Name, SlaTargets] | None = None
    _zone: ZoneInfo = PrivateAttr(default_factory=lambda: ZoneInfo("UTC"))

    @model_validator(mode="after")
    def _valid_references(self) -> Self:
        # validate_document() runs the same checks on the raw data so that they are reported
        # even when some field fails; this keeps RoutingDocument.model_validate() honest too.
        problems = _reference_problems(self.model_dump(mode="json", exclude_none=True))
        if problems:
            raise PydanticCustomError(
                "references",
                "{summary}",
                {"summary": str(DocumentInvalid(problems)), "problems": problems},
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._zone = ZoneInfo(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    def share(self, channel: Channel, category: Category) -> float:
        """Percentage (0-100) of *channel* × *category* customers routed by target."""
        return self.cutover.share(channel, category)

    def route(self, side: Side, category: Category) -> str:
        routes = self.target if side is Side.TARGET else self.baseline
        return routes.destination(category)

    def fallback_for(self, destination: str) -> str | None:
        return self.fallback.get(destination)

    def destination(self, name: str) -> Destination:
        """The destination called *name*; KeyError naming the known ones otherwise."""
        try:
            return self.destinations[name]
        except KeyError:
            known = ", ".join(sorted(self.destinations))
            raise KeyError(f"unknown destination {name!r} (known: {known})") from None

    def address(self, destination: str, channel: Channel) -> str | None:
        return self.destination(destination).address(channel)

    def is_open(self, destination: str, at: datetime) -> bool:
        """Whether *destination* is open at the aware datetime *at* (in any zone)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"is_open needs a timezone-aware datetime, got {at!r}")
        return self.destination(destination).opening_hours.is_open(at.astimezone(self._zone))

    def is_external(self, destination: str) -> bool:
        return self.destination(destination).is_external

    @property
    def routed_channels(self) -> frozenset[Channel]:
        """Channels for which a destination named by baseline or target has an address."""
        used = {
            routes.destination(category)
            for routes in (self.baseline, self.target)
            for category in Category
        }
        return frozenset(
            channel
            for channel in Channel
            if any(self.destinations[name].address(channel) is not None for name in used)
        )

    def ivr_language(self, caller: str) -> str:
        """The language of the longest ``ivr.languages`` prefix of *caller*, else default."""
        if self.ivr is None:
            return DEFAULT_LANGUAGE
        languages = self.ivr.languages
        matching = [p for p in languages if p != "default" and caller.startswith(p)]
        if matching:
            return languages[max(matching, key=len)]
        return languages.get("default", DEFAULT_LANGUAGE)

    def ivr_prompt(self, language: str) -> str:
        return self._text(lambda ivr: ivr.prompts, language, _BUILTIN_PROMPT)

    def voicemail_prompt(self, language: str) -> str:
        return self._text(lambda ivr: ivr.voicemail, language, _BUILTIN_VOICEMAIL)

    def goodbye(self, language: str) -> str:
        return self._text(lambda ivr: ivr.goodbye, language, _BUILTIN_GOODBYE)

    def acknowledgement(self, language: str) -> str:
        """The SMS/WhatsApp acknowledgement in *language*, else the default language's."""
        texts = self.messaging.acknowledgement if self.messaging is not None else {}
        default = self.ivr.languages.get("default") if self.ivr is not None else None
        for candidate in (language, default):
            if candidate is not None and candidate in texts:
                return texts[candidate]
        return _BUILTIN_ACKNOWLEDGEMENT

    def _text(self, texts_of: Callable[[Ivr], dict[str, str]], language: str, builtin: str) -> str:
        # The caller's language, then the document's default language, then built-in English:
        # a caller is never left in silence because a translation is missing.
        if self.ivr is None:
            return builtin
        texts = texts_of(self.ivr)
        for candidate in (language, self.ivr.languages.get("default")):
            if candidate is not None and candidate in texts:
                return texts[candidate]
        return builtin


# --- validation ----------------------------------------------------------------------------


def validate_document(data: object) -> RoutingDocument:
    """The document *data* (parsed YAML/JSON) as a RoutingDocument, or DocumentInvalid.

    Field problems (pydantic) and cross-reference problems (unknown destinations, missing
    addresses, the IVR) are reported together, sorted by path, each once.
    """
    if not isinstance(data, Mapping):
        raise DocumentInvalid(
            [Problem(DOCUMENT_PATH, f"must be a mapping of keys, got {type(data).__name__}")]
        )
    problems: list[Problem] = []
    document: RoutingDocument | None = None
    try:
        document = RoutingDocument.model_validate(data)
    except ValidationError as error:
        problems.extend(problems_of(error, data, root=DOCUMENT_PATH))
        # The model's own reference check only runs when every field is valid; run it on
        # the raw data so one report lists everything.
        problems.extend(_reference_problems(data))
    if problems or document is None:
        unique = list(dict.fromkeys(problems))
        raise DocumentInvalid(sorted(unique, key=lambda problem: problem.path))
    return document


def _reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Rules that span several keys, checked on raw (possibly half-valid) data.

    Anything of the wrong type is skipped here: the field validation reports it.
    """
    problems: list[Problem] = []
    destinations = data.get("destinations")

    # Every (path, destination name) that routes to a destination.
    routing: list[tuple[str, str]] = []
    for side in Side:
        routes = data.get(side.value)
        if isinstance(routes, Mapping):
            for category in Category:
                name = routes.get(category.value)
                if isinstance(name, str):
                    routing.append((f"{side.value}.{category.value}", name))
    uses = list(routing)
    fallback = data.get("fallback")
    if isinstance(fallback, Mapping):
        for source, target in fallback.items():
            if not isinstance(source, str):
                continue
            path = f"fallback.{source}"
            uses.append((path, source))
            if isinstance(target, str):
                uses.append((path, target))
                if target == source:
                    problems.append(Problem(path, "a destination cannot be its own fallback"))

    if not isinstance(destinations, Mapping):
        return problems  # destinations is missing or not a mapping: reported by the fields
    names = set(destinations)
    known = ", ".join(sorted(map(str, names))) or "none"
    for path, name in uses:
        if name not in names:
            problems.append(Problem(path, f"unknown destination {name!r} (known: {known})"))

    def has_address(name: str, channel: Channel) -> bool:
        entry = destinations.get(name)
        return isinstance(entry, Mapping) and entry.get(channel.value) is not None

    # A channel is routed when a destination used by baseline or target has an address for
    # it; then every destination that may receive such a contact (baseline, target,
    # fallback) needs one, or contacts on that channel could not be delivered.
    routed = [
        channel
        for channel in Channel
        if any(has_address(name, channel) for _, name in routing if name in names)
    ]
    first_use: dict[str, str] = {}
    for path, name in uses:
        first_use.setdefault(name, path)
    for channel in routed:
        for name, path in first_use.items():
            entry = destinations.get(name) if name in names else None
            if isinstance(entry, Mapping) and not has_address(name, channel):
                problems.append(
                    Problem(
                        f"destinations.{name}.{channel.value}",
                        f"required: {channel.value} contacts are routed and {path} "
                        "names this destination",
                    )
                )

    problems.extend(_sla_problems(data.get("sla"), destinations, known))

    ivr = data.get("ivr")
    if Channel.PHONE in routed and ivr is None:
        problems.append(Problem("ivr", "required: phone calls are routed, so they need a menu"))
    if isinstance(ivr, Mapping):
        languages = ivr.get("languages", {"default": DEFAULT_LANGUAGE})
        if isinstance(languages, Mapping):
            if "default" not in languages:
                problems.append(
                    Problem(
                        "ivr.languages.default",
                        "required: the language for callers whose number matches no prefix",
                    )
                )
            prompts = ivr.get("prompts")
            if isinstance(prompts, Mapping):
                # A malformed tag is reported by the field check; asking for its prompt too
                # would only add noise.
                used = {
                    language
                    for language in languages.values()
                    if isinstance(language, str) and _LANGUAGE_TAG.fullmatch(language)
                }
                for language in sorted(used - set(prompts)):
                    problems.append(
                        Problem(f"ivr.prompts.{language}", "required: ivr.languages uses it")
                    )
    return problems


def _sla_problems(sla: object, destinations: Mapping[str, Any], known: str) -> list[Problem]:
    """Service levels are the partner's contract: only an existing ``external`` destination
    has them, and only on a channel it has an address for (nothing reaches it otherwise)."""
    problems: list[Problem] = []
    if not isinstance(sla, Mapping):
        return problems
    for name, per_channel in sla.items():
        if not isinstance(name, str):
            continue
        entry = destinations.get(name)
        if name not in destinations:
            problems.append(
                Problem(f"sla.{name}", f"unknown destination {name!r} (known: {known})")
            )
            continue
        if not isinstance(entry, Mapping):
            continue
        if entry.get("kind") != "external":
            problems.append(
                Problem(
                    f"sla.{name}",
                    f"service levels are for external destinations; {name} is "
                    f"{entry.get('kind')!r}",
                )
            )
            continue
        if isinstance(per_channel, Mapping):
            for channel in Channel:
                if per_channel.get(channel.value) is not None and entry.get(channel.value) is None:
                    problems.append(
                        Problem(
                            f"sla.{name}.{channel.value}",
                            f"{name} has no {channel.value} address: no {channel.value} "
                            "contact reaches it",
                        )
                    )
    return problems


# --- text, files, data ---------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader itself reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_document(text: str) -> RoutingDocument:
    """A document from YAML or JSON text; syntax errors are problems at ``(document)``."""
    data: object
    if text.lstrip().startswith("{"):
        # JSON is read as JSON: YAML parsers choke on some valid JSON (tabs, for one).
        try:
            data = parse_json(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as error:
            raise DocumentInvalid(
                [Problem(DOCUMENT_PATH, f"line {error.lineno}, column {error.colno}: {error.msg}")]
            ) from None
        except ValueError as error:
            raise DocumentInvalid([Problem(DOCUMENT_PATH, str(error))]) from None
    else:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise DocumentInvalid(
                [Problem(DOCUMENT_PATH, f"{where}{error.problem or error.context}")]
            ) from None
        except yaml.YAMLError as error:
            raise DocumentInvalid([Problem(DOCUMENT_PATH, f"not YAML: {error}")]) from None
        except RecursionError:
            raise DocumentInvalid([Problem(DOCUMENT_PATH, "nested too deeply")]) from None
        try:
            check_parsed(data)  # YAML aliases: a few lines can stand for billions of values
        except ValueError as error:
            raise DocumentInvalid([Problem(DOCUMENT_PATH, str(error))]) from None
    if data is None:
        raise DocumentInvalid([Problem(DOCUMENT_PATH, "the document is empty")])
    return validate_document(data)


def load_document(path: Path) -> RoutingDocument:
    """Read and validate a YAML/JSON file; OSError if it cannot be read."""
    return parse_document(path.read_text(encoding="utf-8"))


def shipped_document() -> RoutingDocument:
    """The example shipped as ``config/routing.yaml``, loaded on first start."""
    return load_document(shipped_path("routing.yaml"))


def document_data(document: RoutingDocument) -> dict[str, Any]:
    """A JSON-able dict in the shape of routing.yaml; validate_document() reads it back equal.

    Absent optional parts (ivr, costs, guard, an address) are left out; the cut-over matrix
    is always complete.
    """
    return document.model_dump(mode="json", exclude_none=True)


def document_json(document: RoutingDocument) -> str:
    """Canonical JSON (sorted keys, no spaces): equal documents give equal text (ETags)."""
    return canonical_json(document_data(document))


@dataclass(frozen=True, slots=True)
class Change:
    """One leaf that differs between two documents; None where the leaf is absent."""

    path: str
    old: Any
    new: Any


def diff_documents(a: RoutingDocument, b: RoutingDocument) -> list[Change]:
    """Leaf-level differences from *a* to *b*, sorted by path.

    Mappings are walked down to their leaves (``cutover.phone.admin``); lists are leaves
    themselves (``destinations.hotline.hours.closed``, ``classifier.rules``) because a list
    diff by index misreports an insertion as a change of every later item.
    """
    old, new = _leaves(document_data(a)), _leaves(document_data(b))
    return [
        Change(path, old.get(path), new.get(path))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    ]


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    leaves: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            leaves.update(_leaves(value, path))
        else:
            leaves[path] = value
    return leaves
