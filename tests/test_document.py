"""The routing document: the shipped example, every validation rule, and its questions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from router.core.contact import Category, Channel, Side
from router.core.document import (
    Change,
    DocumentInvalid,
    Problem,
    RoutingDocument,
    diff_documents,
    document_data,
    document_json,
    load_document,
    parse_document,
    shipped_document,
    validate_document,
)
from router.core.shipped import shipped_path

PRAGUE = ZoneInfo("Europe/Prague")
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=PRAGUE)  # a Monday, 09:30 Prague
SHIPPED = shipped_document()
BASE: dict[str, Any] = document_data(SHIPPED)
DELETE = object()
LANGUAGES = ("cs-CZ", "sk-SK", "pl-PL", "sl-SI", "ru-RU", "en-US")


def changed(changes: dict[str, object], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of *base* (the shipped data) with dotted paths set, or removed by DELETE."""
    data = copy.deepcopy(BASE if base is None else base)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return data


def problems(data: object) -> list[Problem]:
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(data)
    return caught.value.problems


def paths(data: object) -> list[str]:
    return [problem.path for problem in problems(data)]


def rule(**fields: object) -> dict[str, object]:
    """A classifier rule of the document, valid unless *fields* say otherwise."""
    return {"phrase": "faktura", "category": "admin", "weight": 2.0, "lang": "cs", **fields}


def assert_rejected(data: object, path: str, fragment: str) -> None:
    found = problems(data)
    assert [p.path for p in found] == [path], found
    assert fragment in found[0].message, found


# --- the shipped document --------------------------------------------------------------------


def test_the_shipped_document_validates_and_round_trips() -> None:
    assert validate_document(document_data(SHIPPED)) == SHIPPED
    assert parse_document(document_json(SHIPPED)) == SHIPPED
    assert parse_document(yaml.safe_dump(document_data(SHIPPED), allow_unicode=True)) == SHIPPED
    assert load_document(shipped_path("routing.yaml")) == SHIPPED
    json.dumps(document_data(SHIPPED))  # JSON-able as it is


def test_the_shipped_document_has_the_values_of_the_spec() -> None:
    assert SHIPPED.timezone == "Europe/Prague"
    assert SHIPPED.zone == PRAGUE
    assert [SHIPPED.route(Side.BASELINE, c) for c in Category] == ["hotline"] * 3
    assert [SHIPPED.route(Side.TARGET, c) for c in Category] == ["partner", "hotline", "partner"]
    assert SHIPPED.fallback == {"hotline": "partner", "partner": "hotline"}
    assert all(SHIPPED.share(ch, c) == 0.0 for ch in Channel for c in Category)
    assert SHIPPED.is_external("partner")
    assert not SHIPPED.is_external("hotline")
    assert SHIPPED.address("partner", Channel.PHONE) == "+420800100200"
    assert SHIPPED.address("hotline", Channel.CHAT) == "https://eshop.example/hooks/chat"
    assert SHIPPED.routed_channels == set(Channel)
    assert SHIPPED.ivr is not None
    assert SHIPPED.ivr.digits == {"1": Category.ADMIN, "2": Category.PRODUCT}
    assert SHIPPED.ivr.no_input is Category.ADMIN
    assert SHIPPED.classifier.rules == []
    assert SHIPPED.costs is not None
    assert SHIPPED.costs.partner[Channel.PHONE] == 1.10
    assert SHIPPED.costs.in_house.per_hour[Channel.EMAIL] == 12
    assert SHIPPED.guard is not None
    assert SHIPPED.guard.window_duration == timedelta(minutes=15)
    assert SHIPPED.guard.rollback_duration == timedelta(hours=24)
    assert BASE["cutover"]["phone"] == {"admin": 0, "product": 0, "unknown": 0}
    assert BASE["destinations"]["hotline"]["hours"] == {
        "mon-fri": "08:00-17:00",
        "closed": ["2026-12-24", "2026-12-25"],
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shipped_document_speaks_every_language_it_names(language: str) -> None:
    assert SHIPPED.ivr is not None
    assert language in SHIPPED.ivr.languages.values()
    texts = (SHIPPED.ivr.prompts, SHIPPED.ivr.voicemail, SHIPPED.ivr.goodbye)
    assert all(text.get(language, "").strip() for text in texts)
    assert "1" in SHIPPED.ivr_prompt(language)
    assert "2" in SHIPPED.ivr_prompt(language)


# --- everything wrong at once ----------------------------------------------------------------


def test_a_document_broken_in_many_ways_reports_every_problem_by_path() -> None:
    data = changed(
        {
            "timezone": "Europe/Prag",
            "destinations.partner.phone": "0800 100 200",
            "destinations.partner.fax": "+420800100201",
            "destinations.hotline.email": DELETE,
            "destinations.hotline.hours": {"mon-fri": "17:00-08:00", "closed": ["24.12.2026"]},
            "baseline.product": "hotlin",
            "target.unknown": DELETE,
            "fallback.partner": "partner",
            "cutover.email.admin": 150,
            "ivr.languages.default": DELETE,
            "guard.window": "15 minutes",
        }
    )
    assert paths(data) == [
        "baseline.product",
        "cutover.email.admin",
        "destinations.hotline.email",
        "destinations.hotline.hours.closed[0]",
        "destinations.hotline.hours.mon-fri",
        "destinations.partner.fax",
        "destinations.partner.phone",
        "fallback.partner",
        "guard.window",
        "ivr.languages.default",
        "target.unknown",
        "timezone",
    ]
    # Each problem once, sorted by path, and the exception text lists them one a line.
    found = problems(data)
    assert found == sorted(found, key=lambda p: p.path)
    assert len(found) == len(set(found))
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(data)
    lines = str(caught.value).splitlines()
    assert "baseline.product: unknown destination 'hotlin' (known: hotline, partner)" in lines
    assert "target.unknown: required" in lines


def test_a_rejected_text_document_lists_every_problem_too() -> None:
    text = yaml.safe_dump(changed({"cutover.phone.admin": -1, "target.admin": "nobody"}))
    with pytest.raises(DocumentInvalid) as caught:
        parse_document(text)
    assert [p.path for p in caught.value.problems] == ["cutover.phone.admin", "target.admin"]


# --- each rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"baseline.admin": "helpdesk"}, "baseline.admin", "unknown destination 'helpdesk'"),
        ({"target.product": "Partner"}, "target.product", "known: hotline, partner"),
        ({"fallback.helpdesk": "partner"}, "fallback.helpdesk", "unknown destination"),
        ({"fallback.partner": "helpdesk"}, "fallback.partner", "unknown destination"),
        ({"fallback.hotline": "hotline"}, "fallback.hotline", "its own fallback"),
    ],
)
def test_references_must_name_known_destinations(
    changes: dict[str, object], path: str, fragment: str
) -> None:
    assert_rejected(changed(changes), path, fragment)


@pytest.mark.parametrize(
    ("removed", "fragment"),
    [
        ("destinations.partner.phone", "phone contacts are routed and target.admin"),
        ("destinations.partner.email", "email contacts are routed and target.admin"),
        ("destinations.hotline.chat", "chat contacts are routed and baseline.admin"),
    ],
)
def test_a_destination_needs_an_address_for_every_routed_channel(
    removed: str, fragment: str
) -> None:
    assert_rejected(changed({removed: DELETE}), removed, fragment)


def test_a_fallback_destination_needs_the_addresses_of_routed_channels_too() -> None:
    data = changed(
        {
            "destinations.night": {"kind": "external", "phone": "+420800100300"},
            "fallback.partner": "night",
        }
    )
    assert paths(data) == ["destinations.night.chat", "destinations.night.email"]


def test_a_channel_no_routed_destination_has_an_address_for_is_not_routed() -> None:
    data = changed(
        {
            "destinations.partner.chat": DELETE,
            "destinations.hotline.chat": DELETE,
            "destinations.partner.phone": DELETE,
            "destinations.hotline.phone": DELETE,
            "ivr": DELETE,
        }
    )
    document = validate_document(data)
    assert document.routed_channels == {Channel.EMAIL}
    assert document.ivr is None


def test_ivr_is_required_when_phone_is_routed() -> None:
    assert_rejected(changed({"ivr": DELETE}), "ivr", "phone calls are routed")


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"ivr.languages.+49": "de-DE"}, "ivr.prompts.de-DE", "ivr.languages uses it"),
        ({"ivr.languages.default": DELETE}, "ivr.languages.default", "matches no prefix"),
        ({"ivr.prompts.en-US": DELETE}, "ivr.prompts.en-US", "required"),
        ({"ivr.languages.49": "cs-CZ"}, "ivr.languages.49", 'not a number prefix such as "+420"'),
        ({"ivr.languages.00420": "cs-CZ"}, "ivr.languages.00420", "invalid key"),
        ({"ivr.languages.+49": "german"}, "ivr.languages.+49", "language tag"),
        ({"ivr.digits.12": "admin"}, "ivr.digits.12", "0-9, * or #"),
        ({"ivr.digits.3": "billing"}, "ivr.digits.3", "'admin', 'product' or 'unknown'"),
        ({"ivr.no_input": "nothing"}, "ivr.no_input", "'admin', 'product' or 'unknown'"),
        ({"ivr.prompts.cs-CZ": "  "}, "ivr.prompts.cs-CZ", "must not be empty"),
        ({"ivr.voicemail.en-US": 5}, "ivr.voicemail.en-US", "valid string"),
        ({"ivr.digits": DELETE}, "ivr.digits", "required"),
    ],
)
def test_ivr_rules(changes: dict[str, object], path: str, fragment: str) -> None:
    assert_rejected(changed(changes), path, fragment)


def test_an_unquoted_yaml_phone_prefix_is_rejected_with_a_hint() -> None:
    text = yaml.safe_dump(BASE, allow_unicode=True).replace("'+420': cs-CZ", "+420: cs-CZ")
    assert "\n    +420: cs-CZ\n" in text
    with pytest.raises(DocumentInvalid) as caught:
        parse_document(text)
    assert caught.value.problems == [
        Problem("ivr.languages.420", 'invalid key: 420 is a number: quote the prefix, e.g. "+420"')
    ]


def test_ivr_digit_keys_read_by_yaml_as_integers_are_accepted() -> None:
    document = parse_document(document_json(SHIPPED).replace('"1":', '"9":'))
    assert document.ivr is not None
    text = yaml.safe_dump(document_data(SHIPPED)).replace("'1': admin", "1: admin")
    assert "1: admin" in text
    assert parse_document(text) == SHIPPED


@pytest.mark.parametrize("share", [100.5, -1, -0.001, 1000, True, "50", None, float("nan")])
def test_a_share_outside_0_to_100_or_not_a_number_is_rejected(share: object) -> None:
    assert paths(changed({"cutover.email.admin": share})) == ["cutover.email.admin"]


@pytest.mark.parametrize("share", [0, 0.5, 33.3, 100])
def test_shares_from_0_to_100_are_kept(share: float) -> None:
    document = validate_document(changed({"cutover.chat.product": share}))
    assert document.share(Channel.CHAT, Category.PRODUCT) == share


def test_a_missing_cutover_channel_or_category_is_zero() -> None:
    data = changed({"cutover": {"phone": {"admin": 25}}})
    document = validate_document(data)
    assert document.share(Channel.PHONE, Category.ADMIN) == 25
    assert document.share(Channel.PHONE, Category.PRODUCT) == 0.0
    assert document.share(Channel.EMAIL, Category.ADMIN) == 0.0
    assert document_data(document)["cutover"]["email"] == {"admin": 0, "product": 0, "unknown": 0}
    assert validate_document(changed({"cutover": DELETE})) == SHIPPED
    assert validate_document(changed({"cutover": None})) == SHIPPED


@pytest.mark.parametrize(
    "phone",
    [
        "+4208001",
        "420800100200",
        "+0420800100200",
        "+420 800 100 200",
        "+4208001002001234",
        "sip:",
        "tel:+420800100200",
        "",
        420800100200,
    ],
)
def test_a_malformed_phone_address_is_rejected(phone: object) -> None:
    assert paths(changed({"destinations.hotline.phone": phone})) == ["destinations.hotline.phone"]


@pytest.mark.parametrize(
    "phone",
    [
        "+42080010",
        "+420800100200123",
        "+12025550123",
        "+420222333444",
        "sip:hotline@pbx.eshop.example",
        "sip:pbx.eshop.example:5060;transport=tls",
    ],
)
def test_e164_numbers_and_sip_uris_are_phone_addresses(phone: str) -> None:
    document = validate_document(changed({"destinations.hotline.phone": phone}))
    assert document.address("hotline", Channel.PHONE) == phone


@pytest.mark.parametrize(
    "email",
    [
        "produkty@",
        "produkty eshop.example",
        "produkty@eshop",
        "@eshop.example",
        "produkty@eshop..example",
        "produkty@@eshop.example",
    ],
)
def test_a_malformed_email_address_is_rejected(email: str) -> None:
    assert paths(changed({"destinations.hotline.email": email})) == ["destinations.hotline.email"]


@pytest.mark.parametrize(
    "chat",
    [
        "ftp://eshop.example/chat",
        "eshop.example/hooks/chat",
        "https://",
        "https:///x",
        "https://eshop.example/hooks chat",
    ],
)
def test_a_chat_address_must_be_an_http_url(chat: str) -> None:
    assert paths(changed({"destinations.hotline.chat": chat})) == ["destinations.hotline.chat"]


@pytest.mark.parametrize(
    ("hours", "path"),
    [
        ("allways", "destinations.hotline.hours"),
        ({"mon-fry": "08:00-17:00"}, "destinations.hotline.hours.mon-fry"),
        ({"mon-fri": "08:00-17:60"}, "destinations.hotline.hours.mon-fri"),
        ({"mon": "08:00-17:00", "closed": ["2026-12-32"]}, "destinations.hotline.hours.closed[0]"),
    ],
)
def test_malformed_hours_are_reported_under_the_hours_path(hours: object, path: str) -> None:
    assert paths(changed({"destinations.hotline.hours": hours})) == [path]


@pytest.mark.parametrize("timezone", ["Europe/Prag", "", "CET+1", "../../etc/passwd", 1, None])
def test_the_timezone_must_be_an_iana_zone(timezone: object) -> None:
    assert paths(changed({"timezone": timezone})) == ["timezone"]


@pytest.mark.parametrize("key", ["timezone", "destinations", "baseline", "target"])
def test_required_keys(key: str) -> None:
    assert key in paths(changed({key: DELETE}))
    assert problems(changed({key: DELETE}))[0].message == "required" or key == "destinations"


def test_a_routes_side_needs_all_three_categories() -> None:
    assert paths(changed({"baseline": {"admin": "hotline"}, "target.unknown": DELETE})) == [
        "baseline.product",
        "baseline.unknown",
        "target.unknown",
    ]


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"routes": {}}, "routes"),
        ({"destinations.partner.fax": "+420800100201"}, "destinations.partner.fax"),
        ({"destinations.hotline.hours_note": "x"}, "destinations.hotline.hours_note"),
        ({"baseline.other": "hotline"}, "baseline.other"),
        ({"cutover.sms": {"admin": 5}}, "cutover.sms"),
        ({"cutover.phone.billing": 5}, "cutover.phone.billing"),
        ({"ivr.menu": "x"}, "ivr.menu"),
        ({"classifier.rule": []}, "classifier.rule"),
        (
            {"classifier.rules": [{"phrase": "faktura", "category": "admin", "lng": "cs"}]},
            "classifier.rules[0].lng",
        ),
        ({"costs.in_house.daily": 5}, "costs.in_house.daily"),
        ({"guard.windows": "15m"}, "guard.windows"),
    ],
)
def test_an_unknown_key_at_any_level_is_rejected(changes: dict[str, object], path: str) -> None:
    assert_rejected(changed(changes), path, "unknown key")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"destinations.partner.kind": "outsourced"}, "destinations.partner.kind"),
        ({"destinations.partner.kind": DELETE}, "destinations.partner.kind"),
        ({"classifier.rules": [rule(category="unknown")]}, "classifier.rules[0].category"),
        ({"classifier.rules": [rule(), rule(weight=0)]}, "classifier.rules[1].weight"),
        ({"classifier.rules": [rule(phrase="")]}, "classifier.rules[0].phrase"),
        ({"classifier.rules": [rule(lang="Czech")]}, "classifier.rules[0].lang"),
        ({"classifier.min_confidence": 1.5}, "classifier.min_confidence"),
        ({"costs.currency": "eur"}, "costs.currency"),
        ({"costs.partner.phone": -0.1}, "costs.partner.phone"),
        ({"costs.in_house.per_hour.email": 0}, "costs.in_house.per_hour.email"),
        ({"costs.in_house.per_hour.email": 7.5}, "costs.in_house.per_hour.email"),
        ({"costs.in_house.hourly": -1}, "costs.in_house.hourly"),
        ({"guard.window": "15 minutes"}, "guard.window"),
        ({"guard.rollback_for": "0h"}, "guard.rollback_for"),
        ({"guard.min_contacts": 0}, "guard.min_contacts"),
        ({"guard.max_failure_rate": 1.5}, "guard.max_failure_rate"),
    ],
)
def test_field_rules(changes: dict[str, object], path: str) -> None:
    assert paths(changed(changes)) == [path]


def test_operator_classifier_rules_are_kept_with_their_defaults() -> None:
    data = changed(
        {
            "classifier": {
                "rules": [rule(), {"phrase": "návod", "category": "product"}],
                "min_confidence": 0.3,
            }
        }
    )
    document = validate_document(data)
    first, second = document.classifier.rules
    assert (first.phrase, first.category, first.weight, first.lang) == (
        "faktura",
        Category.ADMIN,
        2.0,
        "cs",
    )
    assert (second.category, second.weight, second.lang) == (Category.PRODUCT, 1.0, None)
    assert document.classifier.min_confidence == 0.3
    assert validate_document(document_data(document)) == document


def test_an_empty_guard_uses_the_shipped_values() -> None:
    document = validate_document(changed({"guard": {}}))
    assert document.guard == SHIPPED.guard


def test_a_bad_key_of_a_map_is_reported_as_a_key() -> None:
    assert_rejected(changed({"costs.partner.sms": 1.0}), "costs.partner.sms", "invalid key")
    data = changed({"destinations.bad name": {"kind": "external", "email": "a@b.example"}})
    assert_rejected(data, "destinations.bad name", "not a destination name")


def test_optional_parts_may_be_left_out() -> None:
    data = {
        "timezone": "UTC",
        "destinations": {"desk": {"kind": "in_house", "email": "desk@eshop.example"}},
        "baseline": {"admin": "desk", "product": "desk", "unknown": "desk"},
        "target": {"admin": "desk", "product": "desk", "unknown": "desk"},
    }
    document = validate_document(data)
    assert document.fallback_for("desk") is None
    assert document.ivr is None and document.costs is None and document.guard is None
    assert document.is_open("desk", NOW)  # hours default to always
    assert document.routed_channels == {Channel.EMAIL}
    assert document_data(document)["destinations"] == {
        "desk": {"kind": "in_house", "email": "desk@eshop.example", "hours": "always"}
    }
    assert validate_document(document_data(document)) == document


def test_empty_yaml_sections_mean_nothing_there() -> None:
    text = yaml.safe_dump(changed({"cutover": None, "classifier": None}))
    # (the shipped document sets classifier.min_confidence: an empty section drops it)
    assert parse_document(text) == validate_document(changed({"cutover": {}, "classifier": {}}))
    assert parse_document(text).classifier.min_confidence == 0.0
    assert parse_document(text).cutover == SHIPPED.cutover


@pytest.mark.parametrize("data", [None, [], "timezone: UTC", 5])
def test_a_document_that_is_not_a_mapping_is_rejected(data: object) -> None:
    assert paths(data) == ["(document)"]


# --- text ------------------------------------------------------------------------------------


def test_a_yaml_syntax_error_names_the_line() -> None:
    text = "timezone: Europe/Prague\ndestinations:\n  partner: {kind: external\nbaseline: x\n"
    with pytest.raises(DocumentInvalid) as caught:
        parse_document(text)
    [problem] = caught.value.problems
    assert problem.path == "(document)"
    assert problem.message.startswith("line 4,")


def test_a_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    text = "timezone: UTC\ntimezone: Europe/Prague\n"
    with pytest.raises(DocumentInvalid) as caught:
        parse_document(text)
    assert caught.value.problems == [
        Problem("(document)", "line 2, column 1: duplicate key 'timezone'")
    ]


def test_a_json_syntax_error_and_a_duplicate_json_key_name_the_problem() -> None:
    with pytest.raises(DocumentInvalid, match=r"\(document\): line 2, column"):
        parse_document('{"timezone": "UTC",\n "x" 1}')
    with pytest.raises(DocumentInvalid, match="duplicate key 'timezone'"):
        parse_document('{"timezone": "UTC", "timezone": "UTC"}')


def test_an_empty_text_is_an_empty_document() -> None:
    with pytest.raises(DocumentInvalid, match="empty"):
        parse_document("# only a comment\n")


def test_json_with_tabs_is_read_as_json() -> None:
    text = json.dumps(document_data(SHIPPED), indent="\t")
    assert parse_document(text) == SHIPPED


def test_unquoted_yaml_dates_in_closed_are_kept_as_iso_strings() -> None:
    text = yaml.safe_dump(BASE, allow_unicode=True).replace("'2026-12-24'", "2026-12-24")
    assert "- 2026-12-24\n" in text
    document = parse_document(text)
    assert document == SHIPPED
    assert document_data(document)["destinations"]["hotline"]["hours"]["closed"][0] == "2026-12-24"


def test_load_document_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.json"
    path.write_text(document_json(SHIPPED), encoding="utf-8")
    assert load_document(path) == SHIPPED


# --- questions asked of a document ------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "hotline_open"),
    [
        (NOW, True),
        (NOW.astimezone(UTC), True),  # any zone: converted to the document's
        (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), True),  # 08:00 in Prague
        (datetime(2026, 11, 23, 6, 59, tzinfo=UTC), False),  # 07:59 in Prague
        (datetime(2026, 11, 23, 16, 0, tzinfo=UTC), False),  # 17:00 in Prague
        (datetime(2026, 11, 28, 10, 0, tzinfo=PRAGUE), False),  # a Saturday
        (datetime(2026, 12, 24, 10, 0, tzinfo=PRAGUE), False),  # a closed date (Thursday)
        (datetime(2026, 12, 23, 23, 30, tzinfo=UTC), False),  # 00:30 on the 24th in Prague
        (datetime(2026, 3, 30, 6, 0, tzinfo=UTC), True),  # Monday after DST: 08:00 CEST
        (datetime(2026, 3, 30, 7, 0, tzinfo=ZoneInfo("Europe/London")), True),  # 07:00 BST
    ],
)
def test_is_open_reads_hours_in_the_document_timezone(at: datetime, hotline_open: bool) -> None:
    assert SHIPPED.is_open("hotline", at) is hotline_open
    assert SHIPPED.is_open("partner", at)


def test_is_open_needs_an_aware_datetime_and_a_known_destination() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SHIPPED.is_open("hotline", datetime(2026, 11, 23, 9, 30))
    with pytest.raises(KeyError, match="unknown destination 'helpdesk'"):
        SHIPPED.is_open("helpdesk", NOW)
    with pytest.raises(KeyError):
        SHIPPED.address("helpdesk", Channel.PHONE)


def test_route_fallback_and_address() -> None:
    assert SHIPPED.route(Side.TARGET, Category.ADMIN) == "partner"
    assert SHIPPED.route(Side.BASELINE, Category.ADMIN) == "hotline"
    assert SHIPPED.fallback_for("hotline") == "partner"
    assert SHIPPED.fallback_for("nobody") is None
    document = validate_document(
        changed({"destinations.partner.chat": DELETE, "destinations.hotline.chat": DELETE})
    )
    assert document.address("partner", Channel.CHAT) is None
    assert document.routed_channels == {Channel.PHONE, Channel.EMAIL}


@pytest.mark.parametrize(
    ("caller", "language"),
    [
        ("+420777123456", "cs-CZ"),
        ("+421905123456", "sk-SK"),
        ("+48601234567", "pl-PL"),
        ("+38640123456", "sl-SI"),
        ("+79161234567", "ru-RU"),
        ("+77011234567", "kk-KZ"),  # +77 (Kazakhstan) is longer than +7
        ("+4917612345678", "en-US"),
        ("+12025550123", "en-US"),
        ("", "en-US"),
        ("anonymous", "en-US"),
    ],
)
def test_ivr_language_is_the_longest_matching_prefix(caller: str, language: str) -> None:
    document = validate_document(
        changed({"ivr.languages.+77": "kk-KZ", "ivr.prompts.kk-KZ": "Сәлеметсіз бе."})
    )
    assert document.ivr_language(caller) == language


def test_texts_fall_back_to_the_default_language_then_to_english() -> None:
    document = validate_document(
        changed(
            {
                "ivr.voicemail": {"cs-CZ": "Nechte vzkaz."},
                "ivr.goodbye": DELETE,
                "ivr.languages.default": "cs-CZ",
            }
        )
    )
    assert document.ivr_prompt("de-DE") == document.ivr_prompt("cs-CZ")
    assert document.voicemail_prompt("sk-SK") == "Nechte vzkaz."
    assert document.goodbye("cs-CZ") == "Thank you for calling. Goodbye."
    assert "leave a message" in validate_document(changed({"ivr.voicemail": {}})).voicemail_prompt(
        "xx-XX"
    )


def test_a_document_without_ivr_speaks_english() -> None:
    data = changed(
        {
            "destinations.partner.phone": DELETE,
            "destinations.hotline.phone": DELETE,
            "ivr": DELETE,
        }
    )
    document = validate_document(data)
    assert document.ivr_language("+420777123456") == "en-US"
    assert "press 1" in document.ivr_prompt("en-US")
    assert document.goodbye("cs-CZ") == "Thank you for calling. Goodbye."


def test_documents_are_immutable() -> None:
    with pytest.raises(ValidationError):
        SHIPPED.timezone = "UTC"  # type: ignore[misc]


def test_a_model_validated_directly_still_gets_the_reference_checks() -> None:
    with pytest.raises(ValidationError):
        RoutingDocument.model_validate(changed({"baseline.admin": "helpdesk"}))


# --- canonical form and diffs ----------------------------------------------------------------


def test_document_json_is_canonical() -> None:
    reordered = dict(reversed(list(BASE.items())))
    assert document_json(validate_document(reordered)) == document_json(SHIPPED)
    assert json.loads(document_json(SHIPPED)) == BASE
    assert document_json(validate_document(changed({"cutover.phone.admin": 25.0}))) == (
        document_json(validate_document(changed({"cutover.phone.admin": 25})))
    )


def test_diff_documents_lists_changed_leaves_sorted_by_path() -> None:
    after = validate_document(
        changed(
            {
                "cutover.phone.admin": 25,
                "fallback.partner": DELETE,
                "destinations.hotline.hours": {"mon-fri": "08:00-18:00", "sat": "09:00-12:00"},
                "guard": DELETE,
                "ivr.prompts.en-US": "Hi.",
            }
        )
    )
    assert diff_documents(SHIPPED, after) == [
        Change("cutover.phone.admin", 0, 25),
        Change("destinations.hotline.hours.closed", ["2026-12-24", "2026-12-25"], None),
        Change("destinations.hotline.hours.mon-fri", "08:00-17:00", "08:00-18:00"),
        Change("destinations.hotline.hours.sat", None, "09:00-12:00"),
        Change("fallback.partner", "hotline", None),
        Change("guard.max_failure_rate", 0.25, None),
        Change("guard.min_contacts", 20, None),
        Change("guard.rollback_for", "24h", None),
        Change("guard.window", "15m", None),
        Change("ivr.prompts.en-US", SHIPPED.ivr_prompt("en-US"), "Hi."),
    ]
    assert diff_documents(after, SHIPPED)[0] == Change("cutover.phone.admin", 25, 0)


def test_equal_documents_have_no_diff() -> None:
    assert diff_documents(SHIPPED, validate_document(copy.deepcopy(BASE))) == []
    # A missing cut-over is the same as zeros: no change to report.
    assert diff_documents(SHIPPED, validate_document(changed({"cutover": {}}))) == []


shares = st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False))


@given(
    st.dictionaries(
        st.sampled_from(list(Channel)), st.dictionaries(st.sampled_from(list(Category)), shares)
    )
)
def test_any_valid_share_matrix_round_trips(matrix: dict[Channel, dict[Category, float]]) -> None:
    data = changed(
        {"cutover": {ch.value: {c.value: v for c, v in row.items()} for ch, row in matrix.items()}}
    )
    document = validate_document(data)
    assert validate_document(document_data(document)) == document
    assert parse_document(document_json(document)) == document
    for channel in Channel:
        for category in Category:
            assert document.share(channel, category) == matrix.get(channel, {}).get(category, 0)
