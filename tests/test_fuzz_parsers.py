"""Every parser of outside input, fuzzed directly (many examples, no I/O): whatever it is
given, it returns a value or raises its one documented error, with a message. Anything
else escaping would be a 500 over HTTP or a traceback from the CLI.

The HTTP side (the same inputs through the real app, fewer examples) is
test_fuzz_http.py; the operators' API against its OpenAPI document is test_fuzz_api.py.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from integrations import chat as chat_format
from integrations import email_inbound as inbound
from integrations import signing
from integrations import twilio_messaging as messaging
from integrations import twilio_voice as tv
from router.core.document import DocumentInvalid, document_data, parse_document, shipped_document
from router.core.durations import parse_duration, parse_since
from router.core.jsondata import parse_json
from router.core.migration import PlanInvalid, parse_plan

from .fuzzing import (
    examples,
    form_values,
    json_bytes,
    json_values,
    junk_bytes,
    junk_text,
    raw_emails,
    with_junk_values,
)

NOW = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
SHIPPED = document_data(shipped_document())


# -- Twilio -------------------------------------------------------------------------------------

TWILIO_FIELDS = st.sampled_from(
    ["CallSid", "From", "To", "Digits", "SpeechResult", "DialCallStatus", "CallStatus",
     "CallDuration", "RecordingUrl", "RecordingDuration", "MessageSid", "SmsSid", "Body"]
)  # fmt: skip


def twilio_forms() -> st.SearchStrategy[MultiDict[str]]:
    """Forms as a MultiDict (repeated names too), values anything text can be."""
    return st.lists(st.tuples(TWILIO_FIELDS, junk_text(60)), max_size=12).map(MultiDict)


@given(twilio_forms())
@examples(300)
def test_twilio_form_readers_return_values_or_value_errors(form: MultiDict[str]) -> None:
    readers: list[Callable[[], object]] = [
        lambda: tv.parse_gather(form, received_at=NOW),
        lambda: tv.dial_status(form),
        lambda: tv.call_sid(form),
        lambda: tv.caller(form),
        lambda: tv.seconds(form, "CallDuration"),
        lambda: tv.seconds(form, "RecordingDuration"),
        lambda: messaging.parse_message(form),
    ]
    for read in readers:
        try:
            read()
        except ValueError as exc:
            assert str(exc)


@given(twilio_forms(), junk_text(60), junk_text(40))
@examples(200)
def test_a_twilio_signature_check_answers_yes_or_no(
    form: MultiDict[str], path: str, signature: str
) -> None:
    url = "https://switchboard.example" + "/" + path
    assert tv.signature_valid("token", url, form, signature) in (True, False)
    try:
        genuine = RequestValidator("token").compute_signature(url, form)
    except UnicodeEncodeError:
        return  # text with lone surrogates: nothing Twilio could have signed
    assert tv.signature_valid("token", url, form, genuine)


# -- our own signature, and Mailgun's -------------------------------------------------------------


@given(junk_bytes(), junk_text(120), st.floats(allow_nan=False, allow_infinity=False))
@examples(300)
def test_a_switchboard_signature_check_gives_a_reason_or_none(
    body: bytes, header: str, now: float
) -> None:
    why = signing.verify("secret", body, header, now)
    assert why is None or why


@given(junk_text(30), junk_text(30), junk_text(80))
@examples(200)
def test_a_mailgun_signature_check_gives_a_reason_or_none(
    timestamp: str, token: str, signature: str
) -> None:
    signed = inbound.MailgunSignature(timestamp, token, signature)
    why = inbound.verify_mailgun("key", signed, NOW.timestamp())
    assert why is None or why


# -- email -------------------------------------------------------------------------------------


def parsed_or_refused(parse: Any, *args: Any) -> None:
    """*parse* gives an email that turns into a contact, or EmailFormatError with a reason."""
    try:
        email = parse(*args)
    except inbound.EmailFormatError as exc:
        assert str(exc)
        return
    assert isinstance(email.raw, bytes)
    email.contact(received_at=NOW)


@given(raw_emails())
@examples(400)
def test_raw_mime_parses_or_is_refused_as_not_an_email(raw: bytes) -> None:
    parsed_or_refused(inbound.parse_mime, raw)


SENDGRID_FIELDS = st.sampled_from(
    ["from", "to", "cc", "subject", "text", "html", "headers", "email", "envelope", "charsets",
     "attachments", "attachment-info", "attachment1", "attachment99999999999999999999", "x"]
)  # fmt: skip
MAILGUN_FIELDS = st.sampled_from(
    ["sender", "from", "recipient", "subject", "body-plain", "body-html", "stripped-text",
     "message-headers", "body-mime", "Message-Id", "In-Reply-To", "References",
     "attachment-count", "attachment-1", "attachment-0000000000000000000000001", "x"]
)  # fmt: skip


def provider_forms(names: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    upload = st.builds(
        inbound.FormFile, filename=junk_text(30), content_type=junk_text(30), data=junk_bytes()
    )
    return st.dictionaries(names, st.one_of(form_values(), upload, json_bytes()), max_size=10)


@given(provider_forms(SENDGRID_FIELDS))
@examples(300)
def test_a_sendgrid_post_parses_or_is_refused(form: dict[str, Any]) -> None:
    parsed_or_refused(inbound.parse_sendgrid, form)


@given(provider_forms(MAILGUN_FIELDS))
@examples(300)
def test_a_mailgun_post_parses_or_is_refused(form: dict[str, Any]) -> None:
    parsed_or_refused(inbound.parse_mailgun, form)


POSTMARK = with_junk_values(
    {
        "From": junk_text(60),
        "FromFull": st.fixed_dictionaries({"Email": junk_text(40), "Name": junk_text(20)}),
        "To": junk_text(60),
        "Subject": junk_text(60),
        "MessageID": junk_text(40),
        "TextBody": junk_text(200),
        "HtmlBody": junk_text(200),
        "Headers": st.lists(
            st.fixed_dictionaries({"Name": junk_text(20), "Value": junk_text(60)}), max_size=4
        ),
        "Attachments": st.lists(
            st.fixed_dictionaries(
                {
                    "Name": junk_text(20),
                    "Content": st.one_of(junk_text(60), st.just("QUFB")),
                    "ContentType": junk_text(20),
                }
            ),
            max_size=3,
        ),
    }
)


@given(json_bytes(st.one_of(POSTMARK, json_values)))
@examples(100)
def test_a_postmark_post_parses_or_is_refused(body: bytes) -> None:
    """The body as the web adapter reads it (parse_json), then Postmark's fields."""
    try:
        payload = parse_json(body)
    except ValueError:
        return
    parsed_or_refused(inbound.parse_postmark, payload)


# -- chat, and JSON in general ------------------------------------------------------------------

CHAT = with_junk_values(
    {
        "conversation_id": junk_text(30),
        "customer_id": junk_text(30),
        "text": junk_text(200),
        "language": st.sampled_from(["cs", "en-US", "xx_YY", "c", ""]),
        "sent_at": st.sampled_from(["2026-11-23T08:00:00Z", "0001-01-01T00:00:00+14:00", "x"]),
        "message_id": junk_text(30),
    }
)


@given(json_bytes(CHAT))
@examples(400)
def test_a_chat_body_parses_or_is_refused_with_problems_by_path(body: bytes) -> None:
    try:
        message = chat_format.parse_chat(body)
    except chat_format.ChatFormatError as exc:
        assert exc.problems
        assert all(problem["path"] and problem["message"] for problem in exc.problems)
        return
    message.contact(received_at=NOW)


@given(json_bytes())
@examples(300)
def test_parse_json_returns_a_value_or_a_value_error(body: bytes) -> None:
    try:
        parse_json(body)
    except ValueError as exc:
        assert str(exc)


# -- routing documents, plans, durations ---------------------------------------------------------


@st.composite
def mutated_document(draw: st.DrawFn) -> dict[str, Any]:
    """The shipped document with a few values anywhere in it replaced, removed or added."""
    data = copy.deepcopy(SHIPPED)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        while isinstance(node, dict) and node and draw(st.booleans()):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict) or not child:
                break
            node = child
        if not isinstance(node, dict):
            continue
        key = draw(st.one_of(st.sampled_from(sorted(node) or ["x"]), junk_text(10)))
        action = draw(st.sampled_from(["replace", "remove", "replace"]))
        if action == "remove":
            node.pop(key, None)
        else:
            node[key] = draw(json_values)
    return data


def document_texts() -> st.SearchStrategy[str]:
    as_json = mutated_document().map(lambda d: json.dumps(d, ensure_ascii=False))
    as_yaml = mutated_document().map(lambda d: yaml.safe_dump(d, allow_unicode=True))
    broken = st.one_of(
        junk_text(300),
        st.integers(30, 2000).map(lambda n: "a: " + "[" * n),
        st.integers(30, 2000).map(lambda n: "{" + '"a": {' * n),
        st.just("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
            for i in range(6)
        )),
        st.just("timezone: Europe/Prague\ntimezone: UTC\n"),
    )  # fmt: skip
    return st.one_of(as_json, as_yaml, broken)


@given(document_texts())
@examples(60)
def test_a_routing_document_validates_or_lists_its_problems_by_path(text: str) -> None:
    try:
        parse_document(text)
    except DocumentInvalid as exc:
        assert exc.problems
        assert all(problem.path and problem.message for problem in exc.problems)


PLAN_STEP = with_junk_values(
    {
        "at": st.sampled_from(
            ["2026-12-01T08:00:00+01:00", "2026-12-01", "9999-12-31T23:59:59-01:00", "x", ""]
        ),
        "reason": junk_text(40),
        "cutover": st.dictionaries(
            st.sampled_from(["phone", "email", "chat", "fax"]),
            st.dictionaries(
                st.sampled_from(["admin", "product", "unknown", "x"]),
                st.one_of(st.integers(-(2**70), 2**70), st.floats(), junk_text(10)),
                max_size=3,
            ),
            max_size=3,
        ),
    }
)


def plan_texts() -> st.SearchStrategy[str]:
    steps = st.lists(st.one_of(PLAN_STEP, json_values), max_size=4)
    return st.one_of(
        steps.map(lambda s: json.dumps(s, allow_nan=True)),
        steps.map(lambda s: yaml.safe_dump(s, allow_unicode=True)),
        junk_text(300),
        st.integers(30, 2000).map(lambda n: "- " * n),
    )


@given(plan_texts())
@examples(80)
def test_a_plan_parses_or_lists_its_problems_by_path(text: str) -> None:
    try:
        parse_plan(text)
    except PlanInvalid as exc:
        assert exc.problems
        assert all(problem.path and problem.message for problem in exc.problems)


@given(st.one_of(junk_text(40), st.from_regex(r"\A[0-9]{1,30}[smhd]\Z")))
@examples(300)
def test_durations_and_times_parse_or_raise_value_errors(text: str) -> None:
    for parse in (parse_duration, lambda t: parse_since(t, NOW)):
        try:
            parse(text)
        except ValueError as exc:
            assert str(exc)
