"""The partner's service levels: the sla: section of the routing document, the time to answer
kept from Twilio's callbacks, the pure figures (router/core/sla.py) on plain values, then the
same figures from a seeded database through the CLI (both backends) and the API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from router.core.calls import CallProgress, time_to_answer
from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.document import (
    DocumentInvalid,
    RoutingDocument,
    document_data,
    parse_document,
    shipped_document,
    validate_document,
)
from router.core.lifecycle import Outcome
from router.core.shipped import shipped_path
from router.core.sla import (
    AnswerTime,
    DialTally,
    FeedbackTally,
    ForwardTally,
    Sla,
    build_sla,
    nearest_rank,
    render_csv,
    render_table,
    verdict,
)
from router.service.records import NewInteraction, PartnerFeedback, Target, new_forward
from router.service.tokens import Role, create_token
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store

from .conftest import PUBLIC_URL, Client, Clock, invoke, migrated_store, post_twilio
from .test_api import api
from .test_remote_cli import remote
from .test_voice import dialled

SINCE = datetime(2026, 10, 24, 8, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TARGETS: dict[str, Any] = {
    "partner": {
        "phone": {
            "answer_rate": 0.9,
            "time_to_answer_p80": "20s",
            "resolution_rate": 0.8,
            "average_rating": 4.0,
        },
        "email": {"answer_rate": 0.75, "resolution_rate": 0.5},
        "chat": {"answer_rate": 0.95},
    }
}


def with_sla(sla: Any) -> RoutingDocument:
    return validate_document({**document_data(shipped_document()), "sla": sla})


DOCUMENT = with_sla(TARGETS)


def problems(sla: Any) -> list[tuple[str, str]]:
    with pytest.raises(DocumentInvalid) as caught:
        with_sla(sla)
    return [(problem.path, problem.message) for problem in caught.value.problems]


# -- the sla: section -----------------------------------------------------------------------------


def test_the_targets_are_read_per_destination_and_channel() -> None:
    assert DOCUMENT.sla is not None
    phone = DOCUMENT.sla["partner"].phone
    assert phone is not None
    assert (phone.answer_rate, phone.time_to_answer_seconds) == (0.9, 20.0)
    assert DOCUMENT.sla["partner"].targets(Channel.CHAT) is not None
    assert document_data(DOCUMENT)["sla"]["partner"]["email"] == {
        "answer_rate": 0.75,
        "resolution_rate": 0.5,
    }
    # every target is optional, and a document without the section has none
    assert with_sla({"partner": {"phone": {}}}).sla is not None
    assert shipped_document().sla is None
    assert "sla" not in document_data(shipped_document())


def test_every_problem_of_the_sla_section_is_named_by_path() -> None:
    found = problems(
        {
            "hotline": {"phone": {"answer_rate": 0.9}},
            "nobody": {"email": {}},
            "partner": {
                "phone": {"answer_rate": 1.5, "time_to_answer_p80": "soon", "colour": "red"},
                "email": {"time_to_answer_p80": "20s", "average_rating": 6},
                "chat": {"resolution_rate": -0.1, "average_rating": 0.5},
                "fax": {},
            },
        }
    )
    assert found == [
        ("sla.hotline", "service levels are for external destinations; hotline is 'in_house'"),
        ("sla.nobody", "unknown destination 'nobody' (known: hotline, partner)"),
        ("sla.partner.chat.average_rating", "must be at least 1, not 0.5"),
        ("sla.partner.chat.resolution_rate", "must be at least 0, not -0.1"),
        ("sla.partner.email.average_rating", "must be at most 5, not 6"),
        ("sla.partner.email.time_to_answer_p80", "unknown key"),
        ("sla.partner.fax", "unknown key"),
        ("sla.partner.phone.answer_rate", "must be at most 1, not 1.5"),
        ("sla.partner.phone.colour", "unknown key"),
        (
            "sla.partner.phone.time_to_answer_p80",
            "invalid duration 'soon': expected a positive whole number and one unit s, m, h "
            "or d, such as 90s, 15m, 24h or 2d",
        ),
    ]


def test_a_channel_the_destination_has_no_address_for_has_no_targets() -> None:
    data = document_data(shipped_document())
    data["destinations"]["outsourced"] = {"kind": "external", "email": "desk@out.example"}
    data["sla"] = {"outsourced": {"email": {"answer_rate": 0.9}, "chat": {"answer_rate": 0.9}}}
    with pytest.raises(DocumentInvalid) as caught:
        validate_document(data)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("sla.outsourced.chat", "outsourced has no chat address: no chat contact reaches it"),
    ]


@pytest.mark.parametrize("value", ["0.9", True, "90%"])
def test_a_rate_is_a_number(value: object) -> None:
    [(path, _)] = problems({"partner": {"phone": {"answer_rate": value}}})
    assert path == "sla.partner.phone.answer_rate"


def test_the_shipped_example_of_the_section_is_valid_as_written() -> None:
    """config/routing.yaml carries the section commented out; uncommented, it is valid."""
    text = shipped_path("routing.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("# sla:")
    example = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        example.append(line.removeprefix("# "))
    document = parse_document(text + "\n" + "\n".join(example) + "\n")
    assert document.sla is not None
    phone = document.sla["partner"].phone
    assert phone is not None and phone.time_to_answer_seconds == 20.0
    assert set(document_data(document)["sla"]["partner"]) == {"phone", "email", "chat"}


# -- the time to answer ---------------------------------------------------------------------------

T0 = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def test_the_time_to_answer_is_the_ringing_before_the_talk() -> None:
    # dialled at T0, reported 200.34 s later after 187 s connected: 13.34 s of ringing
    reported = T0 + timedelta(seconds=200.34)
    assert time_to_answer(dialled_at=T0, reported_at=reported, talk_seconds=187) == 13.3
    # answered at once: Twilio's whole seconds may come out a fraction over; never below 0
    early = T0 + timedelta(seconds=186.6)
    assert time_to_answer(dialled_at=T0, reported_at=early, talk_seconds=187) == 0.0
    assert time_to_answer(dialled_at=None, reported_at=reported, talk_seconds=187) is None
    assert time_to_answer(dialled_at=T0, reported_at=reported, talk_seconds=None) is None


# -- the figures, on plain values -----------------------------------------------------------------


def test_the_p80_is_the_nearest_rank() -> None:
    # sorted 3 7 12 18 30: rank ceil(0.8 x 5) = 4 -> 18
    assert nearest_rank([12, 3, 30, 7, 18]) == 18
    # 1..10: rank ceil(0.8 x 10) = 8 exactly (no float error pushing it to 9)
    assert nearest_rank([float(n) for n in range(10, 0, -1)]) == 8.0
    assert nearest_rank([42.5]) == 42.5
    assert nearest_rank([]) is None
    assert nearest_rank([1, 2, 3, 4], percentile=50) == 2
    with pytest.raises(ValueError, match="percentile"):
        nearest_rank([1.0], percentile=0)


@pytest.mark.parametrize(
    ("metric", "target", "measured", "expected"),
    [
        ("answer_rate", 0.9, 0.9, "met"),  # exactly the target is met
        ("answer_rate", 0.9, 0.8999, "missed"),
        ("answer_rate", 0.9, None, "no data"),
        ("time_to_answer_p80", 20.0, 20.0, "met"),  # at most the target
        ("time_to_answer_p80", 20.0, 20.1, "missed"),
        ("time_to_answer_p80", 20.0, 0.0, "met"),
        ("average_rating", 4.0, 4.0, "met"),
        ("average_rating", 4.0, 3.99, "missed"),
        ("resolution_rate", 0.5, 1.0, "met"),
    ],
)
def test_the_verdicts(metric: Any, target: float, measured: float | None, expected: str) -> None:
    assert verdict(metric, target, measured) == expected


def dials() -> list[DialTally]:
    """Phone: 10 dials to the partner, 7 answered (hand-counted below)."""
    return [
        # first to the partner, answered there: 6 dials, 6 answered
        DialTally("partner", "partner", "completed", None, "answered", 6),
        # first to the partner, unanswered; the hotline answered: 2 partner dials, 0 answered
        DialTally("partner", "hotline", "no-answer", "completed", "answered", 2),
        # first to the hotline, then the partner as fallback, busy: 1 partner dial, 0 answered
        DialTally("hotline", "partner", "no-answer", "busy", "voicemail_offered", 1),
        # first to the hotline, then the partner answered: 1 partner dial, 1 answered
        DialTally("hotline", "partner", "no-answer", "answered", "answered", 1),
        # still ringing at the partner (nothing reported): not counted
        DialTally("partner", "partner", None, None, "routed", 1),
        # the hotline's own calls: not the partner's
        DialTally("hotline", "hotline", "completed", None, "answered", 5),
    ]


def answer_times() -> list[AnswerTime]:
    """The partner answered 7 dials: 6 first dials and 1 as fallback."""
    first = [AnswerTime("partner", "partner", False, s) for s in (4, 9, 15, 22, 30, 11)]
    return [
        *first,
        AnswerTime("hotline", "partner", True, 5.0),  # the fallback dial: the partner's
        AnswerTime("partner", "hotline", True, 50.0),  # answered by the hotline: not counted
        AnswerTime("hotline", "hotline", False, 99.0),
    ]


def forwards() -> list[ForwardTally]:
    """Email: 10 forwards sent to the partner, 6 delivered (hand-counted below)."""
    return [
        ForwardTally("email", "partner", "partner", "primary", "delivered", 5),  # 5 of 5
        ForwardTally("email", "partner", "partner", "primary", "failed", 1),  # 0 of 1
        ForwardTally("email", "partner", "partner", "primary", "pending", 2),  # not yet
        # moved on to the hotline: sent to the partner, not delivered there
        ForwardTally("email", "partner", "hotline", "fallback", "delivered", 2),  # 0 of 2
        ForwardTally("email", "partner", "hotline", "fallback", "pending", 1),  # 0 of 1
        # the hotline failed, the partner (its fallback) delivered: 1 of 1
        ForwardTally("email", "hotline", "partner", "fallback", "delivered", 1),
        ForwardTally("email", "hotline", "hotline", "primary", "delivered", 9),
    ]


def feedback() -> list[FeedbackTally]:
    return [
        # phone: 3 of 4 resolved; ratings 5 + 5 + 2 = 12 over 3 = 4.0, exactly the target
        FeedbackTally("phone", "partner", "resolved", 5, 2),
        FeedbackTally("phone", "partner", "resolved", None, 1),
        FeedbackTally("phone", "partner", "unresolved", 2, 1),
        # email: 1 of 2 resolved, exactly the target of 0.5
        FeedbackTally("email", "partner", "resolved", 3, 1),
        FeedbackTally("email", "partner", "escalated", None, 1),
        # the hotline's: not the partner's
        FeedbackTally("phone", "hotline", "unresolved", 1, 4),
    ]


#: (destination, channel, metric, target, measured, count, basis, verdict), by hand
EXPECTED_ROWS = [
    ("partner", "phone", "answer_rate", 0.9, 0.7, 10, "dials", "missed"),  # 7 / 10
    # 4 5 9 11 15 22 30: rank ceil(0.8 x 7) = 6 -> 22
    ("partner", "phone", "time_to_answer_p80", 20.0, 22.0, 7, "answered dials", "missed"),
    ("partner", "phone", "resolution_rate", 0.8, 0.75, 4, "reports", "missed"),
    ("partner", "phone", "average_rating", 4.0, 4.0, 3, "ratings", "met"),
    ("partner", "email", "answer_rate", 0.75, 0.6, 10, "forwards", "missed"),  # 6 / 10
    ("partner", "email", "resolution_rate", 0.5, 0.5, 2, "reports", "met"),
    ("partner", "chat", "answer_rate", 0.95, None, 0, "forwards", "no data"),
]


def expected_sla(version: int = 1) -> dict[str, Any]:
    keys = ("destination", "channel", "metric", "target", "measured", "count", "basis")
    return {
        "since": SINCE.isoformat(),
        "until": UNTIL.isoformat(),
        "version": version,
        "rows": [dict(zip((*keys, "verdict"), row, strict=True)) for row in EXPECTED_ROWS],
        "notes": [],
    }


def sla(document: RoutingDocument = DOCUMENT, **changes: Any) -> Sla:
    figures: dict[str, Any] = {
        "dials": dials(),
        "answer_times": answer_times(),
        "forwards": forwards(),
        "feedback": feedback(),
        **changes,
    }
    return build_sla(document, version=1, since=SINCE, until=UNTIL, **figures)


def test_the_worked_example_by_hand() -> None:
    assert sla().model_dump(mode="json") == expected_sla()


def test_without_any_contact_every_figure_is_no_data() -> None:
    result = sla(dials=[], answer_times=[], forwards=[], feedback=[])
    assert [(r.metric, r.measured, r.count, r.verdict) for r in result.rows] == [
        ("answer_rate", None, 0, "no data"),
        ("time_to_answer_p80", None, 0, "no data"),
        ("resolution_rate", None, 0, "no data"),
        ("average_rating", None, 0, "no data"),
        ("answer_rate", None, 0, "no data"),
        ("resolution_rate", None, 0, "no data"),
        ("answer_rate", None, 0, "no data"),
    ]


def test_feedback_without_ratings_leaves_the_rating_without_data() -> None:
    unrated = [FeedbackTally("phone", "partner", "resolved", None, 3)]
    result = sla(feedback=unrated)
    [resolution] = [r for r in result.rows if (r.channel, r.metric) == ("phone", "resolution_rate")]
    [rating] = [r for r in result.rows if (r.channel, r.metric) == ("phone", "average_rating")]
    assert (resolution.measured, resolution.count, resolution.verdict) == (1.0, 3, "met")
    assert (rating.measured, rating.count, rating.verdict) == (None, 0, "no data")


def test_only_the_targets_written_are_assessed() -> None:
    result = sla(with_sla({"partner": {"email": {"resolution_rate": 0.5}}}))
    assert [(r.channel, r.metric, r.verdict) for r in result.rows] == [
        ("email", "resolution_rate", "met")
    ]


def test_a_document_without_an_sla_section_answers_no_rows_and_says_why() -> None:
    result = sla(shipped_document())
    assert result.rows == []
    assert result.notes == [
        "routing version 1 has no sla section: there are no targets to assess "
        "(add sla: to the routing document)"
    ]
    assert "no sla section" in render_table(result)
    assert render_csv(result).splitlines() == [
        "destination,channel,metric,target,measured,count,basis,verdict"
    ]


def test_the_table_and_the_csv() -> None:
    result = sla()
    assert render_table(result).splitlines() == [
        "partner service levels from 2026-10-24T08:00:00+00:00 until 2026-11-23T08:00:00+00:00",
        "targets of routing version 1 (the routing in force)",
        "",
        "destination  channel metric                target  measured             based on  verdict",
        "partner      phone   answer rate            90.0%     70.0%             10 dials  missed",
        "partner      phone   time to answer p80      20 s      22 s     7 answered dials  missed",
        "partner      phone   resolution rate        80.0%     75.0%            4 reports  missed",
        "partner      phone   average rating          4.00      4.00            3 ratings  met",
        "partner      email   answer rate            75.0%     60.0%          10 forwards  missed",
        "partner      email   resolution rate        50.0%     50.0%            2 reports  met",
        "partner      chat    answer rate            95.0%         -           0 forwards  no data",
    ]
    rows = list(csv.DictReader(io.StringIO(render_csv(result))))
    assert rows[1] == {
        "destination": "partner",
        "channel": "phone",
        "metric": "time_to_answer_p80",
        "target": "20.0",
        "measured": "22.0",
        "count": "7",
        "basis": "answered dials",
        "verdict": "missed",
    }
    assert rows[-1]["measured"] == ""
    assert Sla.model_validate_json(result.model_dump_json()) == result


# -- the same figures from a database ---------------------------------------------------------

PERIOD = ("--since", SINCE.isoformat(), "--until", UNTIL.isoformat())
QUERY = f"since={SINCE.isoformat()}&until={UNTIL.isoformat()}".replace("+", "%2B")
PARTNER = Target("partner", "eshop@partner.example", True)
HOTLINE = Target("hotline", "produkty@eshop.example", False)
INSIDE = SINCE + timedelta(days=10)


def a_contact(provider_id: str, channel: Channel, first: str, final: str) -> NewInteraction:
    return NewInteraction(
        channel=channel,
        provider_id=provider_id,
        customer_hash="h",
        category=Category.ADMIN,
        category_source=CategorySource.DIGIT,
        rule=None,
        confidence=None,
        side=Side.TARGET,
        destination=final,
        first_destination=first,
        reason=Reason.TARGET if first == final else Reason.UNANSWERED,
        version=1,
        bucket=10.0,
        language="cs-CZ",
        received_at=INSIDE,
        decided_at=INSIDE,
        updated_at=INSIDE,
        outcome=Outcome.ROUTED,
    )


async def seed(store: Store, document: RoutingDocument = DOCUMENT) -> None:
    """The worked example's contacts as the app records them, plus contacts that must not
    count: received before the period, and a caller who hung up in the IVR menu."""
    await apply_document(store, document, actor="test", reason="contract", now=UNTIL)
    # each answered call takes a time of its kind while there is one; the others have none
    # (as calls recorded before the times were kept)
    times: dict[tuple[str, str, bool], list[float]] = {}
    for answer in answer_times():
        key = (answer.first_destination, answer.destination, answer.by_fallback)
        times.setdefault(key, []).append(answer.seconds)
    number = 0

    def next_id() -> str:
        nonlocal number
        number += 1
        return f"id-{number}"

    async with store.unit_of_work() as uow:
        for tally in dials():
            for _ in range(tally.calls):
                row = a_contact(
                    next_id(), Channel.PHONE, tally.first_destination, tally.destination
                )
                row = replace(row, outcome=Outcome(tally.outcome or "routed"))
                interaction_id = await uow.add_interaction(row)
                assert interaction_id is not None
                key = (tally.first_destination, tally.destination, bool(tally.fallback_status))
                pool = times.get(key, []) if tally.outcome == "answered" else []
                progress = CallProgress(
                    dial_status=tally.dial_status,
                    fallback_status=tally.fallback_status,
                    answer_seconds=pool.pop(0) if pool else None,
                )
                await uow.update_interaction(interaction_id, progress, INSIDE)
        for forward in forwards():
            for _ in range(forward.forwards):
                row = a_contact(
                    next_id(), Channel.EMAIL, forward.first_destination, forward.destination
                )
                interaction_id = await uow.add_interaction(replace(row, outcome=Outcome.QUEUED))
                assert interaction_id is not None
                first = PARTNER if forward.first_destination == "partner" else HOTLINE
                fallback = HOTLINE if first is PARTNER else PARTNER
                await uow.add_forward(
                    interaction_id,
                    new_forward(Channel.EMAIL, first, b"mail", {}, INSIDE, fallback=fallback),
                )
        outside = replace(
            a_contact("early", Channel.PHONE, "partner", "partner"),
            received_at=SINCE - timedelta(seconds=1),
            outcome=Outcome.ANSWERED,
        )
        early = await uow.add_interaction(outside)
        assert early is not None
        late = CallProgress(dial_status="completed", answer_seconds=999.0)
        await uow.update_interaction(early, late, INSIDE)
        menu = replace(
            a_contact("menu", Channel.PHONE, "", ""),
            category_source=CategorySource.HANGUP,
            reason=Reason.ABANDONED,
            outcome=Outcome.ABANDONED,
        )
        await uow.add_interaction(menu)
    # what the outbox worker would have made of each forward: its stage, status, destination
    async with store.engine.begin() as connection:
        rows = (await connection.execute(sa.text("SELECT id FROM outbox ORDER BY id"))).scalars()
        ids = iter(list(rows))
        for forward in forwards():
            for _ in range(forward.forwards):
                await connection.execute(
                    sa.text(
                        "UPDATE outbox SET stage = :stage, status = :status, "
                        "destination = :destination WHERE id = :id"
                    ),
                    {
                        "stage": forward.stage,
                        "status": forward.status,
                        "destination": forward.destination,
                        "id": next(ids),
                    },
                )
    # the partner's feedback, on contacts of the channel and final destination it is about
    contacts = await store.interactions(limit=None)
    for report in feedback():
        about = [
            c
            for c in contacts
            if (c.channel, c.destination) == (report.channel, report.destination)
            and c.partner_outcome is None
            and c.provider_id != "early"
        ]
        for contact in about[: report.reports]:
            said = PartnerFeedback(
                partner_outcome=report.outcome,
                partner_rating=report.rating,
                partner_comment=None,
                feedback_at=INSIDE,
            )
            assert await store.record_feedback(contact.id, said)
        contacts = await store.interactions(limit=None)
    said = PartnerFeedback(
        partner_outcome="unresolved", partner_rating=1, partner_comment=None, feedback_at=INSIDE
    )
    assert await store.record_feedback(early, said)  # before the period: not counted


def seeded(env: dict[str, str], document: RoutingDocument = DOCUMENT) -> None:
    async def run() -> None:
        async with migrated_store(env["SWITCHBOARD_DATABASE_URL"]) as store:
            await seed(store, document)

    asyncio.run(run())


def test_the_command_on_the_database_prints_the_worked_example(env: dict[str, str]) -> None:
    seeded(env)
    result = invoke(env, "sla", *PERIOD, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected_sla(version=1)

    table = invoke(env, "sla", *PERIOD)
    assert table.exit_code == 0, table.output
    assert table.stdout.strip() == render_table(Sla.model_validate(expected_sla(version=1)))
    assert "partner      phone   time to answer p80      20 s      22 s" in table.stdout

    rows = list(csv.DictReader(io.StringIO(invoke(env, "sla", *PERIOD, "--format", "csv").stdout)))
    assert [(r["channel"], r["metric"], r["verdict"]) for r in rows][:2] == [
        ("phone", "answer_rate", "missed"),
        ("phone", "time_to_answer_p80", "missed"),
    ]


def test_without_an_sla_section_the_command_says_so(env: dict[str, str]) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(env, "sla", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["rows"] == [] and body["version"] == 1
    assert "no sla section" in body["notes"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "-3d"), "--since"),
        (("--until", "soon"), "--until"),
        (("--since", "1d", "--until", "2d"), "the period is empty"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_sla_options_are_errors_on_stderr(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(env, "sla", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_the_api_answers_the_worked_example_as_json_and_csv(
    client: Client, migrated: Store, clock: Clock, settings: Settings
) -> None:
    await seed(migrated)
    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/sla?{QUERY}", token)
    assert answer.status == 200, answer.body
    current = await migrated.current_version()
    assert current is not None
    assert answer.body == expected_sla(version=current.version)

    download = await client.get(
        f"/api/sla?{QUERY}&format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="sla-2026-10-24-2026-11-23.csv"'
    )
    assert await download.text() == render_csv(Sla.model_validate(answer.body))

    # through the API, the command prints what the API answers
    code, out, err = await remote(client, settings, token, "sla", *PERIOD, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == answer.body

    # by default the 30 days before the app's clock (Monday 23 November, 08:30 UTC)
    default = await api(client, "GET", "/api/sla", token)
    assert default.status == 200, default.body
    since, until = (datetime.fromisoformat(default.body[end]) for end in ("since", "until"))
    assert until - since == timedelta(days=30)
    assert timedelta(0) <= until - datetime(2026, 11, 23, 8, 30, tzinfo=UTC) < timedelta(minutes=1)
    assert default.body["rows"][0]["count"] == 10


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("since=-3d", ["since"]),
        ("since=7d&format=xml&colour=red", ["format", "colour"]),
        ("until=31d", ["until"]),  # the default since (30d) is not before it
    ],
)
async def test_bad_sla_parameters_are_422_with_every_problem(
    client: Client, migrated: Store, clock: Clock, query: str, paths: list[str]
) -> None:
    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/sla?{query}", token)
    assert answer.status == 422, answer.body
    assert [problem["path"] for problem in answer.body["problems"]] == paths


async def test_sla_needs_a_token_and_is_published(client: Client) -> None:
    assert (await client.get("/api/sla")).status == 401
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/sla"]["get"]
    assert operation["x-switchboard-role"] == "viewer"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert [parameter["name"] for parameter in operation["parameters"]] == [
        "since",
        "until",
        "format",
    ]


# -- the time to answer, from Twilio's callbacks to the figures ---------------------------------

CALLER = "+420601234567"


async def dial_outcome(client: Client, action: str, sid: str, status: str, talk: str | None) -> str:
    form = {"CallSid": sid, "From": CALLER, "DialCallStatus": status}
    if talk is not None:
        form["DialCallDuration"] = talk
    response = await post_twilio(client, action.removeprefix(PUBLIC_URL), form)
    assert response.status == 200
    return await response.text()


async def test_an_answered_dial_keeps_its_time_to_answer(
    client: Client, migrated: Store, clock: Clock
) -> None:
    """Routed at T (the <Dial> given), reported 200 s later after 187 s connected: 13 s of
    ringing. A retry of the report, later still, changes nothing."""
    await apply_document(migrated, DOCUMENT, actor="test", reason="contract", now=clock())
    form = {"CallSid": "CA-ring", "From": CALLER, "To": "+420555000111", "Digits": "1"}
    routed = await (await post_twilio(client, "/webhooks/twilio/voice/route", form)).text()
    number, action = dialled(routed)
    assert number == "+420222333444"  # the hotline
    assert "attempt=1" in action and "destination=hotline" in action
    clock.advance(timedelta(seconds=200))
    await dial_outcome(client, action, "CA-ring", "completed", "187")
    [row] = await migrated.interactions(limit=None)
    ringing = (row.updated_at - row.decided_at).total_seconds() - 187  # the app's own clock
    assert row.answer_seconds == max(0.0, round(ringing, 1))
    assert 13.0 <= row.answer_seconds < 14.0
    assert (row.outcome, row.handle_seconds, row.fallback_dialled_at) == ("answered", 187, None)

    clock.advance(timedelta(seconds=30))
    await dial_outcome(client, action, "CA-ring", "completed", "187")
    [again] = await migrated.interactions(limit=None)
    assert again.answer_seconds == row.answer_seconds


async def test_a_fallback_dial_is_timed_from_when_it_was_given(
    client: Client, migrated: Store, clock: Clock, settings: Settings
) -> None:
    """The hotline rings out after 30 s; the partner, dialled then as its fallback, answers
    and the call lasts 100 s more than 25 s of ringing: the partner's time to answer is 25 s,
    measured from the fallback <Dial>, and its dial counts for it in `switchboard sla`."""
    await apply_document(migrated, DOCUMENT, actor="test", reason="contract", now=clock())
    form = {"CallSid": "CA-fb", "From": CALLER, "To": "+420555000111", "Digits": "2"}
    routed = await (await post_twilio(client, "/webhooks/twilio/voice/route", form)).text()
    _, first = dialled(routed)
    clock.advance(timedelta(seconds=30))
    fallback = await dial_outcome(client, first, "CA-fb", "no-answer", "0")
    number, second = dialled(fallback)
    assert number == "+420800100200" and "attempt=2" in second
    [row] = await migrated.interactions(limit=None)
    assert row.fallback_dialled_at is not None and row.answer_seconds is None
    given = row.fallback_dialled_at
    assert 30 <= (given - row.decided_at).total_seconds() < 31

    clock.advance(timedelta(seconds=125))
    await dial_outcome(client, second, "CA-fb", "completed", "100")
    [row] = await migrated.interactions(limit=None)
    assert (row.dial_status, row.fallback_status, row.outcome) == (
        "no-answer",
        "completed",
        "answered",
    )
    assert row.answer_seconds == max(0.0, round((row.updated_at - given).total_seconds() - 100, 1))
    assert 25.0 <= row.answer_seconds < 26.0

    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", "/api/sla?since=1h", token)
    assert answer.status == 200, answer.body
    phone = {r["metric"]: r for r in answer.body["rows"] if r["channel"] == "phone"}
    assert (phone["answer_rate"]["measured"], phone["answer_rate"]["count"]) == (1.0, 1)
    assert phone["answer_rate"]["verdict"] == "met"
    timed = phone["time_to_answer_p80"]
    assert (timed["measured"], timed["count"]) == (row.answer_seconds, 1)
    assert timed["verdict"] == "missed"  # over 20 s
    assert (phone["resolution_rate"]["verdict"], phone["average_rating"]["verdict"]) == (
        "no data",
        "no data",
    )


# -- PostgreSQL -----------------------------------------------------------------------------------


async def test_the_worked_example_on_postgres(postgres_database_url: str) -> None:
    """The store's aggregates (dials, forwards joined to their contacts, feedback, the
    answer times) give the same figures on PostgreSQL."""
    from router.service.queries import partner_sla

    async with migrated_store(postgres_database_url) as store:
        await seed(store)
        result = await partner_sla(store, since=SINCE, until=UNTIL)
        current = await store.current_version()
    assert current is not None
    assert result.model_dump(mode="json") == expected_sla(version=current.version)
