"""Hotline staffing: the pure core (router/core/staffing.py) on plain values, then calls
stored in a real database read back through the CLI (on the database and through the API)
and the API, against figures worked out by hand."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from router.core.calls import CallProgress
from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.document import shipped_document
from router.core.lifecycle import Outcome
from router.core.migration import cut_over
from router.core.shipped import shipped_path
from router.core.staffing import (
    RecordedCall,
    Staffing,
    StaffingError,
    Target,
    build_staffing,
    parse_target,
    render_csv,
    render_table,
    whole_hours,
)
from router.service.records import NewInteraction
from router.service.tokens import Role, create_token
from router.service.versions import apply_document
from router.settings import Settings
from router.store import Store

from .conftest import PUBLIC_URL, Client, Clock, invoke, migrated_store, post_twilio
from .test_api import api
from .test_remote_cli import remote
from .test_voice import dialled

PRAGUE = ZoneInfo("Europe/Prague")
#: Two whole weeks, Monday 9 to Monday 23 November 2026 in Prague (no clock change): every
#: hour of the week occurs twice.
SINCE = datetime(2026, 11, 9, tzinfo=PRAGUE)
UNTIL = datetime(2026, 11, 23, tzinfo=PRAGUE)
TARGET = Target(80, 20)
#: The shipped routing with half of the admin calls cut over to the partner: a customer
#: whose bucket is below 50 goes to the partner, the others stay with the hotline, whose
#: hours are Monday to Friday 08:00-17:00 (the partner, its fallback, is always open).
DOCUMENT = cut_over(shipped_document(), Channel.PHONE, Category.ADMIN, 50)
ANSWERED = "answered"


def at(week: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of week 0 or 1 of the period: *day* 0 is Monday."""
    return SINCE + timedelta(weeks=week, days=day, hours=hour, minutes=minute)


def a_call(
    when: datetime,
    category: Category = Category.PRODUCT,
    *,
    bucket: float = 70.0,
    outcome: str | None = ANSWERED,
    talk: int | None = 300,
    whole: int | None = None,
) -> RecordedCall:
    return RecordedCall(category, bucket, when, outcome, talk, whole if whole else (talk or 0) + 25)


def recorded_calls() -> list[RecordedCall]:
    """The calls of the worked example (times in Prague):

    * Monday 10-11. Week 0: a product call (talk 240 s); an admin call of a customer in bucket
      10 (the partner's under the current shares; talk 120 s); a product call nobody answered.
      Week 1: a product call (talk 360 s); an admin call in bucket 90 (the hotline's) from
      before talk times were kept: only its whole duration, 200 s.
    * Tuesday 14-15, each week: 15 product calls and 5 admin calls in bucket 20, 300 s each.
    * Saturday 11-12: a product call; the hotline is closed, so it goes to the partner.
    """
    calls = [
        a_call(at(0, 0, 10, 5), talk=240),
        a_call(at(0, 0, 10, 20), Category.ADMIN, bucket=10.0, talk=120),
        a_call(at(0, 0, 10, 40), outcome="voicemail_offered", talk=None),
        a_call(at(1, 0, 10, 15), talk=360),
        a_call(at(1, 0, 10, 30), Category.ADMIN, bucket=90.0, talk=None, whole=200),
        a_call(at(0, 5, 11)),
    ]
    for week in (0, 1):
        calls += [a_call(at(week, 1, 14, minute)) for minute in range(15)]
        calls += [a_call(at(week, 1, 14, 30 + m), Category.ADMIN, bucket=20.0) for m in range(5)]
    return calls


def staffing(calls: list[RecordedCall] | None = None, **changes: Any) -> Staffing:
    arguments: dict[str, Any] = {
        "version": 7,
        "since": SINCE.astimezone(UTC),
        "until": UNTIL.astimezone(UTC),
        "target": TARGET,
        **changes,
    }
    document = arguments.pop("document", DOCUMENT)
    return build_staffing(recorded_calls() if calls is None else calls, document, **arguments)


def hour_of(result: Staffing, scenario: str, weekday: str, hour: int) -> dict[str, Any]:
    [found] = [
        h.model_dump()
        for h in result.scenarios[scenario].hours  # type: ignore[index]
        if (h.weekday, h.hour) == (weekday, hour)
    ]
    return found


# Worked by hand (Erlang B recursion, then C = N B / (N - A (1 - B)), SL = 1 - C e^{-(N-A) t/aht},
# ASA = C aht / (N - A); t = 20 s):
#
# current, Monday 10: 4 calls (the admin one in bucket 10 is the partner's) in 2 Mondays =
#   2 calls/h; AHT (240 + 360 + 200) / 3 = 266.7 s; A = 2 x 266.67 / 3600 = 0.1481 erl.
#   One agent is M/M/1: C = A = 0.1481, SL = 1 - 0.1481 e^{-0.8519 x 20 / 266.67} = 0.8610,
#   ASA = 0.1481 x 266.67 / 0.8519 = 46.4 s.
# all in-house, Monday 10: 5 calls = 2.5/h; AHT (240 + 360 + 120 + 200) / 4 = 230 s;
#   A = 0.1597; one agent: SL = 1 - 0.1597 e^{-0.8403 x 20 / 230} = 0.8515, ASA 43.7 s.
# current, Tuesday 14: 30 product calls = 15/h at 300 s: A = 1.25 erl.
#   B1 = 0.5556, B2 = 0.2577, B3 = 0.0970; 2 agents: C = 0.4808, SL = 0.5427 < 0.8;
#   3 agents: C = 3 x 0.0970 / (3 - 1.25 x 0.9030) = 0.1555, SL = 1 - 0.1555 e^{-1.75/15}
#   = 0.8616, occupancy 1.25 / 3 = 0.4167, ASA 0.1555 x 300 / 1.75 = 26.7 s.
# all in-house, Tuesday 14: 40 calls = 20/h: A = 1.6667 erl; 3 agents: SL = 0.7550 < 0.8;
#   4 agents: C = 0.1025, SL = 0.9123, occupancy 0.4167, ASA 13.2 s.
MONDAY_CURRENT = {
    "weekday": "mon",
    "hour": 10,
    "occurrences": 2,
    "calls": 4,
    "calls_per_hour": 2.0,
    "aht_seconds": 266.7,
    "erlangs": 0.1481,
    "agents": 1,
    "occupancy": 0.1481,
    "service_level": 0.861,
    "asa_seconds": 46.4,
    "abandoned": None,  # Erlang C: nobody hangs up
}
MONDAY_ALL_IN_HOUSE = {
    **MONDAY_CURRENT,
    "calls": 5,
    "calls_per_hour": 2.5,
    "aht_seconds": 230.0,
    "erlangs": 0.1597,
    "occupancy": 0.1597,
    "service_level": 0.8515,
    "asa_seconds": 43.7,
}
TUESDAY_CURRENT = {
    "weekday": "tue",
    "hour": 14,
    "occurrences": 2,
    "calls": 30,
    "calls_per_hour": 15.0,
    "aht_seconds": 300.0,
    "erlangs": 1.25,
    "agents": 3,
    "occupancy": 0.4167,
    "service_level": 0.8616,
    "asa_seconds": 26.7,
    "abandoned": None,
}
TUESDAY_ALL_IN_HOUSE = {
    **TUESDAY_CURRENT,
    "calls": 40,
    "calls_per_hour": 20.0,
    "erlangs": 1.6667,
    "agents": 4,
    "occupancy": 0.4167,
    "service_level": 0.9123,
    "asa_seconds": 13.2,
}


def assert_worked_example(result: Staffing | dict[str, Any]) -> None:
    body = result.model_dump(mode="json") if isinstance(result, Staffing) else result
    scenarios = body["scenarios"]
    hours = {
        name: {(h["weekday"], h["hour"]): h for h in scenario["hours"]}
        for name, scenario in scenarios.items()
    }
    assert hours["current"][("mon", 10)] == MONDAY_CURRENT
    assert hours["all_in_house"][("mon", 10)] == MONDAY_ALL_IN_HOUSE
    assert hours["current"][("tue", 14)] == TUESDAY_CURRENT
    assert hours["all_in_house"][("tue", 14)] == TUESDAY_ALL_IN_HOUSE
    # every other hour occurred twice without a call for the hotline: nobody needed
    for name in ("current", "all_in_house"):
        assert len(hours[name]) == 168
        others = [h for key, h in hours[name].items() if key not in {("mon", 10), ("tue", 14)}]
        assert {(h["occurrences"], h["calls"], h["agents"]) for h in others} == {(2, 0, 0)}
    current, all_in = scenarios["current"], scenarios["all_in_house"]
    # (240 + 360 + 200 + 30 x 300) / 33 = 297.0; (240 + 360 + 120 + 200 + 40 x 300) / 44 = 293.6
    assert (current["calls"], current["timed_calls"], current["aht_seconds"]) == (34, 33, 297.0)
    assert (current["peak_agents"], current["agent_hours"]) == (3, 4)
    assert (all_in["calls"], all_in["timed_calls"], all_in["aht_seconds"]) == (45, 44, 293.6)
    assert (all_in["peak_agents"], all_in["agent_hours"]) == (4, 5)
    assert body["destinations"] == ["hotline"]
    assert body["target"] == {"percent": 80.0, "seconds": 20}
    assert body["timezone"] == "Europe/Prague"
    assert (body["model"], body["patience_seconds"]) == ("erlang_c", None)
    assert len(body["notes"]) == 2  # the call from before talk times, in each scenario
    assert all("CallDuration" in note for note in body["notes"])


# -- the core ------------------------------------------------------------------------------------


def test_the_worked_example_by_hand() -> None:
    result = staffing()
    assert_worked_example(result)
    assert (result.since, result.until, result.version) == (
        "2026-11-08T23:00:00+00:00",
        "2026-11-22T23:00:00+00:00",
        7,
    )


def test_a_call_after_the_hotlines_hours_goes_to_the_partner_and_needs_no_agent() -> None:
    saturday = [a_call(at(0, 5, 11)), a_call(at(1, 5, 11))]
    result = staffing(saturday)
    for name in ("current", "all_in_house"):
        assert hour_of(result, name, "sat", 11)["calls"] == 0
        assert result.scenarios[name].calls == 0
        assert result.scenarios[name].agent_hours == 0


def test_all_admin_on_the_partner_leaves_only_product_calls_in_house() -> None:
    everything = cut_over(DOCUMENT, Channel.PHONE, None, 100)
    result = staffing(document=everything)
    # product calls stay with the hotline whatever the shares; admin ones all go
    assert hour_of(result, "current", "tue", 14)["calls"] == 30
    assert hour_of(result, "current", "mon", 10)["calls"] == 3
    assert hour_of(result, "all_in_house", "tue", 14)["calls"] == 40


def test_no_calls_need_no_agents() -> None:
    result = staffing([])
    for scenario in result.scenarios.values():
        assert (scenario.calls, scenario.aht_seconds, scenario.peak_agents) == (0, None, 0)
        assert {(h.agents, h.erlangs, h.service_level) for h in scenario.hours} == {(0, 0.0, None)}
    assert result.notes == []


def test_calls_without_any_handle_time_have_unknown_agents_and_a_note() -> None:
    unanswered = [a_call(at(0, 0, 9), outcome="voicemail_offered", talk=None)]
    result = staffing(unanswered)
    nine = hour_of(result, "current", "mon", 9)
    assert (nine["calls"], nine["calls_per_hour"], nine["agents"]) == (1, 0.5, None)
    assert result.scenarios["current"].peak_agents is None
    assert any("no offered call has a handle time" in note for note in result.notes)


def test_an_hour_without_handle_times_takes_the_periods_average() -> None:
    calls = [a_call(at(0, 0, 9), talk=600), a_call(at(0, 2, 9), outcome="fallback", talk=None)]
    wednesday = hour_of(staffing(calls), "current", "wed", 9)
    assert (wednesday["aht_seconds"], wednesday["calls_per_hour"]) == (600.0, 0.5)
    assert wednesday["erlangs"] == pytest.approx(0.0833, abs=1e-4)  # 0.5 x 600 / 3600


def test_a_period_shorter_than_a_week_says_which_hours_have_no_figures() -> None:
    start = SINCE.astimezone(UTC)
    result = staffing([], since=start, until=start + timedelta(days=1))
    monday = [h for h in result.scenarios["current"].hours if h.weekday == "mon"]
    assert {h.occurrences for h in monday} == {1}
    tuesday = hour_of(result, "current", "tue", 3)
    assert (tuesday["occurrences"], tuesday["calls_per_hour"], tuesday["agents"]) == (0, None, None)
    assert "24 of the 168 hours" in result.notes[0]


def test_hours_are_those_of_the_documents_timezone_across_a_clock_change() -> None:
    """Sunday 25 October 2026 has 25 hours in Prague: 02:00-03:00 occurs twice."""
    start = datetime(2026, 10, 25, tzinfo=PRAGUE).astimezone(UTC)
    result = staffing([], since=start, until=start + timedelta(hours=25))
    sunday = [h.occurrences for h in result.scenarios["current"].hours if h.weekday == "sun"]
    assert sunday[2] == 2
    assert sum(sunday) == 25


def test_the_period_is_cut_to_whole_local_hours() -> None:
    since = datetime(2026, 11, 9, 8, 20, tzinfo=PRAGUE)
    until = datetime(2026, 11, 9, 17, 59, tzinfo=PRAGUE)
    start, end = whole_hours(since, until, PRAGUE)
    assert (start.astimezone(PRAGUE).hour, end.astimezone(PRAGUE).hour) == (8, 17)
    assert whole_hours(SINCE, UNTIL, PRAGUE) == (SINCE, UNTIL)
    with pytest.raises(StaffingError, match="no whole hour"):
        whole_hours(since, since + timedelta(minutes=30), PRAGUE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("80/20", Target(80, 20)), ("90.5/15s", Target(90.5, 15)), (" 70/0 ", Target(70, 0))],
)
def test_targets_are_percent_slash_seconds(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80/x", "PERCENT/SECONDS"),
        ("80", "PERCENT/SECONDS"),
        ("80/-5", "PERCENT/SECONDS"),
        ("100/20", "below 100"),
        ("0/20", "above 0"),
    ],
)
def test_a_bad_target_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target(text)


def test_the_table_shows_the_hours_with_calls_side_by_side() -> None:
    text = render_table(staffing())
    lines = text.splitlines()
    assert "target 80 % of calls answered within 20 s (Erlang C)" in lines[1]
    monday = next(line for line in lines if line.startswith("mon 10-11"))
    assert monday.split() == [
        *("mon", "10-11"),
        *("2.00", "267", "0.148", "1", "14.8%", "86.1%"),
        *("2.50", "230", "0.160", "1", "16.0%", "85.2%"),
    ]
    tuesday = next(line for line in lines if line.startswith("tue 14-15"))
    assert tuesday.split()[2:] == [
        *("15.00", "300", "1.250", "3", "41.7%", "86.2%"),
        *("20.00", "300", "1.667", "4", "41.7%", "91.2%"),
    ]
    assert not any(line.startswith("sat") for line in lines)
    assert (
        "current shares: 34 call(s), 33 with a handle time, AHT 297.0 s; "
        "peak 3 agent(s), 4 agent-hours a week"
    ) in text
    assert (
        "all in-house: 45 call(s), 44 with a handle time, AHT 293.6 s; "
        "peak 4 agent(s), 5 agent-hours a week"
    ) in text


def test_the_csv_has_a_line_per_scenario_and_hour() -> None:
    rows = {
        (r["scenario"], r["weekday"], r["hour"]): r
        for r in csv.DictReader(io.StringIO(render_csv(staffing())))
    }
    assert len(rows) == 2 * 168
    tuesday = rows[("all_in_house", "tue", "14")]
    assert tuesday == {
        "scenario": "all_in_house",
        "weekday": "tue",
        "hour": "14",
        "occurrences": "2",
        "calls": "40",
        "calls_per_hour": "20.0",
        "aht_seconds": "300.0",
        "erlangs": "1.6667",
        "agents": "4",
        "occupancy": "0.4167",
        "service_level": "0.9123",
        "asa_seconds": "13.2",
        "abandoned": "",
    }
    quiet = rows[("current", "sun", "3")]
    assert (quiet["calls"], quiet["agents"], quiet["service_level"]) == ("0", "0", "")


def test_the_json_reads_back_into_the_same_staffing() -> None:
    result = staffing()
    assert Staffing.model_validate(json.loads(result.model_dump_json())) == result


# -- end to end: calls in a real database, the CLI and the API ---------------------------------

PERIOD = ("--since", SINCE.isoformat(), "--until", UNTIL.isoformat())
QUERY = f"since={SINCE.isoformat()}&until={UNTIL.isoformat()}".replace("+", "%2B")


async def seed(store: Store) -> None:
    """The worked example's calls as the app records them, with DOCUMENT in force, plus a
    caller who hung up in the IVR menu in the busiest hour (never offered to anyone)."""
    now = UNTIL
    await apply_document(store, DOCUMENT, actor="test", reason="half of admin out", now=now)
    async with store.unit_of_work() as uow:
        for number, call in enumerate(recorded_calls()):
            row = NewInteraction(
                channel=Channel.PHONE,
                provider_id=f"CA-{number}",
                customer_hash="h",
                category=call.category,
                category_source=CategorySource.DIGIT,
                rule=None,
                confidence=None,
                side=Side.BASELINE,
                destination="hotline",
                first_destination="hotline",
                reason=Reason.BASELINE,
                version=1,
                bucket=call.bucket,
                language="cs-CZ",
                received_at=call.received_at,
                decided_at=call.received_at,
                updated_at=call.received_at,
                outcome=Outcome(call.outcome or "routed"),
            )
            interaction_id = await uow.add_interaction(row)
            assert interaction_id is not None
            progress = CallProgress(
                call_status="completed",
                duration_seconds=call.call_seconds,
                handle_seconds=call.talk_seconds if call.outcome == ANSWERED else None,
            )
            await uow.update_interaction(interaction_id, progress, now)
        hangup = replace(
            row,
            provider_id="CA-menu",
            category=Category.UNKNOWN,
            category_source=CategorySource.HANGUP,
            destination="",
            first_destination="",
            reason=Reason.ABANDONED,
            received_at=at(0, 1, 14, 45),
            outcome=Outcome.ABANDONED,
        )
        await uow.add_interaction(hangup)


def test_the_command_on_the_database_prints_the_worked_example(env: dict[str, str]) -> None:
    async def seeded() -> None:
        async with migrated_store(env["SWITCHBOARD_DATABASE_URL"]) as store:
            await seed(store)

    asyncio.run(seeded())
    result = invoke(env, "staffing", *PERIOD, "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert_worked_example(body)
    assert body["version"] == 1

    table = invoke(env, "staffing", *PERIOD)
    assert table.exit_code == 0, table.output
    assert table.stdout.strip() == render_table(Staffing.model_validate(body))
    assert "tue 14-15     15.00    300    1.250      3  41.7%  86.2%" in table.stdout

    rows = list(
        csv.DictReader(io.StringIO(invoke(env, "staffing", *PERIOD, "--format", "csv").stdout))
    )
    assert len(rows) == 336
    assert rows[0]["scenario"] == "current" and rows[-1]["scenario"] == "all_in_house"

    # a stricter target needs more agents in the busy hour: 95 % within 10 s
    strict = json.loads(
        invoke(env, "staffing", *PERIOD, "--target", "95/10", "--format", "json").stdout
    )
    busy = [
        h
        for h in strict["scenarios"]["current"]["hours"]
        if (h["weekday"], h["hour"]) == ("tue", 14)
    ]
    assert busy[0]["agents"] > TUESDAY_CURRENT["agents"]
    assert busy[0]["service_level"] >= 0.95


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target", "80/x"), "--target"),
        (("--target", "100/20"), "below 100"),
        (("--since", "-3d"), "--since"),
        (("--until", "soon"), "--until"),
        (("--since", "1d", "--until", "2d"), "the period is empty"),
        (("--format", "xml"), "--format"),
    ],
)
def test_bad_staffing_options_are_errors_on_stderr(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(env, "staffing", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_period_without_a_whole_hour_is_refused(env: dict[str, str]) -> None:
    invoke(env, "config", "apply", str(shipped_path("routing.yaml")), "--reason", "start")
    result = invoke(
        env,
        "staffing",
        "--since",
        "2026-11-09T08:10:00+01:00",
        "--until",
        "2026-11-09T08:50:00+01:00",
    )
    assert result.exit_code == 1
    assert "holds no whole hour" in result.stderr


async def test_the_api_answers_the_worked_example_as_json_and_csv(
    client: Client, migrated: Store, clock: Clock, settings: Settings
) -> None:
    await seed(migrated)
    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/staffing?{QUERY}", token)
    assert answer.status == 200, answer.body
    assert_worked_example(answer.body)

    download = await client.get(
        f"/api/staffing?{QUERY}&format=csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["Content-Disposition"] == (
        'attachment; filename="staffing-2026-11-08-2026-11-22.csv"'
    )
    text = await download.text()
    assert text == render_csv(Staffing.model_validate(answer.body))

    # through the API, the command prints what the API answers
    code, out, err = await remote(client, settings, token, "staffing", *PERIOD, "--format", "json")
    assert code == 0, err
    assert json.loads(out) == answer.body

    # by default the 28 days before the app's clock (Monday 23 November, 09:30 in Prague)
    default = await api(client, "GET", "/api/staffing", token)
    assert default.status == 200, default.body
    assert (default.body["since"], default.body["until"]) == (
        "2026-10-26T08:00:00+00:00",  # 09:00 in Prague, 28 x 24 hours before the end
        "2026-11-23T08:00:00+00:00",
    )
    assert default.body["scenarios"]["current"]["calls"] == 34


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ("target=80/x", ["target"]),
        ("since=-3d", ["since"]),
        ("since=7d&target=100/20&format=xml&colour=red", ["target", "format", "colour"]),
        ("until=30d", ["until"]),  # the default since (28d) is not before it
        ("since=2026-11-09T08:10:00Z&until=2026-11-09T08:50:00Z", ["since"]),  # no whole hour
        ("patience=0s", ["patience"]),
    ],
)
async def test_bad_staffing_parameters_are_422_with_every_problem(
    client: Client, migrated: Store, clock: Clock, query: str, paths: list[str]
) -> None:
    await apply_document(migrated, DOCUMENT, actor="test", reason="start", now=clock())
    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    answer = await api(client, "GET", f"/api/staffing?{query}", token)
    assert answer.status == 422, answer.body
    assert [problem["path"] for problem in answer.body["problems"]] == paths


async def test_staffing_needs_a_token_and_is_published(client: Client) -> None:
    assert (await client.get("/api/staffing")).status == 401
    document = await (await client.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/staffing"]["get"]
    assert operation["x-switchboard-role"] == "viewer"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    names = [parameter["name"] for parameter in operation["parameters"]]
    assert names == ["since", "until", "target", "patience", "format"]


# -- the handle time, from Twilio's callbacks to the figures ----------------------------------


async def test_the_answered_dials_duration_is_the_handle_time(
    client: Client, migrated: Store, clock: Clock
) -> None:
    """DialCallDuration of the answered <Dial> is kept as the call's handle time; the status
    callback's CallDuration (menu and ringing included) stays the call's duration."""
    await apply_document(migrated, DOCUMENT, actor="test", reason="start", now=clock())
    caller = "+420601234567"
    form = {"CallSid": "CA-talk", "From": caller, "To": "+420555000111", "Digits": "2"}
    body = await (await post_twilio(client, "/webhooks/twilio/voice/route", form)).text()
    _, action = dialled(body)
    dial = {"CallSid": "CA-talk", "From": caller, "DialCallStatus": "completed"}
    response = await post_twilio(
        client, action.removeprefix(PUBLIC_URL), {**dial, "DialCallDuration": "187"}
    )
    assert response.status == 200
    status = {
        "CallSid": "CA-talk",
        "From": caller,
        "CallStatus": "completed",
        "CallDuration": "215",
    }
    assert (await post_twilio(client, "/webhooks/twilio/voice/status", status)).status == 200

    [row] = await migrated.interactions(limit=None)
    assert (row.outcome, row.handle_seconds, row.duration_seconds) == ("answered", 187, 215)
    token = await create_token(migrated, "vera", Role.VIEWER, clock())
    listed = await api(client, "GET", "/api/interactions", token)
    assert listed.body[0]["handle_seconds"] == 187
    # the hour in progress is not a whole hour yet: an hour later it counts
    clock.advance(timedelta(hours=1))
    answer = await api(client, "GET", "/api/staffing?since=7d", token)
    assert answer.status == 200, answer.body
    current = answer.body["scenarios"]["current"]
    assert (current["calls"], current["timed_calls"], current["aht_seconds"]) == (1, 1, 187.0)
    assert answer.body["notes"] == []


async def test_an_unanswered_dial_has_no_handle_time(
    client: Client, migrated: Store, clock: Clock
) -> None:
    await apply_document(migrated, DOCUMENT, actor="test", reason="start", now=clock())
    form = {"CallSid": "CA-ring", "From": "+420601234567", "To": "+420555000111", "Digits": "2"}
    body = await (await post_twilio(client, "/webhooks/twilio/voice/route", form)).text()
    _, action = dialled(body)
    fields = {"CallSid": "CA-ring", "From": "+420601234567", "DialCallStatus": "no-answer"}
    response = await post_twilio(
        client, action.removeprefix(PUBLIC_URL), {**fields, "DialCallDuration": "0"}
    )
    assert response.status == 200
    [row] = await migrated.interactions(limit=None)
    assert (row.outcome, row.handle_seconds) == ("fallback", None)


# -- Erlang A: callers who hang up ---------------------------------------------------------------


def test_with_a_patience_the_hours_are_staffed_by_erlang_a() -> None:
    """Callers who hang up after a minute on average: the busy hour is computed by Erlang A
    (router/core/erlang_a.py, tested on its own) and says how many hang up."""
    from router.core.erlang_a import agents_needed_a

    result = staffing(patience=60.0)
    assert (result.model, result.patience_seconds) == ("erlang_a", 60.0)
    tuesday = hour_of(result, "current", "tue", 14)
    expected = agents_needed_a(1.25, 300, 60, 0.8, 20)
    assert tuesday["agents"] == expected.agents
    assert tuesday["abandoned"] == round(expected.abandoned, 4)
    assert 0 < tuesday["abandoned"] < 0.1
    assert tuesday["service_level"] >= 0.8
    assert hour_of(result, "current", "sun", 3)["abandoned"] is None  # no calls
    assert "Erlang A, callers' mean patience 60 s" in render_table(result)
    assert "hang up" in render_table(result)
    with pytest.raises(StaffingError, match="patience"):
        staffing(patience=0.0)


def test_the_command_and_the_api_take_a_patience(env: dict[str, str]) -> None:
    async def seeded() -> None:
        async with migrated_store(env["SWITCHBOARD_DATABASE_URL"]) as store:
            await seed(store)

    asyncio.run(seeded())
    result = invoke(env, "staffing", *PERIOD, "--patience", "60s", "--format", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["model"], body["patience_seconds"]) == ("erlang_a", 60.0)
    assert body == staffing(patience=60.0, version=1).model_dump(mode="json")
    bad = invoke(env, "staffing", "--patience", "soon")
    assert bad.exit_code == 2
    assert "--patience" in bad.stderr


# -- PostgreSQL -----------------------------------------------------------------------------------


async def test_the_worked_example_on_postgres(postgres_database_url: str) -> None:
    """The store's read of the calls (Store.staffing_calls) gives the same figures on
    PostgreSQL: timestamps with their zone, the IVR hang-up left out."""
    from router.service.queries import hotline_staffing

    async with migrated_store(postgres_database_url) as store:
        await seed(store)
        result = await hotline_staffing(store, since=SINCE, until=UNTIL, target=TARGET)
    assert_worked_example(result)
