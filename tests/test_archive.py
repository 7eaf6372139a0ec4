"""The archive (issue #16 part 2): finding a customer's contacts by the keyed hash of what
the operator types, one contact with its attempts, recordings and forward, call recording
per destination, and retention. The real app on a real SQLite file, the real CLI, and the
real PostgreSQL server for retention across replicas and its index."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from router.core.contact import Category, CategorySource, Channel, Reason, Side
from router.core.document import DocumentInvalid, shipped_document, validate_document
from router.core.lifecycle import ForwardStatus, Outcome
from router.core.statement import Month
from router.service.contacts import customer_hash
from router.service.queries import contacts_report, month_statement
from router.service.records import (
    AttemptKind,
    FailedAttempt,
    InteractionSearch,
    NewAttempt,
    NewInteraction,
    PartnerFeedback,
    RetentionCounts,
    RetentionCursor,
    Target,
    new_forward,
)
from router.service.retention import apply_retention, retention_due
from router.service.versions import apply_document
from router.settings import load_settings
from router.store import Store

from .conftest import NOW, PUBLIC_URL, Clock, invoke, migrated_store, post_twilio, shipped_data
from .test_api import Client, Tokens, api, problem_paths
from .test_api import tokens as tokens  # the fixture
from .test_schema import query_plans
from .test_voice import dial_status, dialled, route

SECRET = "a-test-secret-of-enough-length"
CALLER = "+420601234567"
OTHER = "+420777888999"
RECORDING = "/webhooks/twilio/voice/recording"
RECORDED = "/webhooks/twilio/voice/recorded"
EMAIL = "/webhooks/email/mime"


def contact(
    provider_id: str,
    *,
    customer: str = CALLER,
    channel: Channel = Channel.PHONE,
    destination: str = "hotline",
    category: Category = Category.PRODUCT,
    outcome: Outcome = Outcome.ANSWERED,
    received_at: Any = NOW,
) -> NewInteraction:
    return NewInteraction(
        channel=channel,
        provider_id=provider_id,
        customer_hash=customer_hash(SECRET.encode(), customer),
        category=category,
        category_source=CategorySource.DIGIT,
        rule=None,
        confidence=None,
        side=Side.BASELINE,
        destination=destination,
        first_destination=destination,
        reason=Reason.BASELINE,
        version=1,
        bucket=10.0,
        language="cs-CZ",
        received_at=received_at,
        decided_at=received_at,
        updated_at=received_at,
        outcome=outcome,
    )


async def seed(store: Store, *rows: NewInteraction) -> list[int]:
    ids = []
    for row in rows:
        async with store.unit_of_work() as uow:
            added = await uow.add_interaction(row)
        assert added is not None
        ids.append(added)
    return ids


# -- 1. search --------------------------------------------------------------------------------


async def test_a_customer_is_found_by_the_hash_of_the_number_as_typed(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    await route(client, "CA1", caller=CALLER, Digits="1")
    await route(client, "CA2", caller=OTHER, Digits="2")
    await route(client, "CA3", caller=CALLER, Digits="2")

    async def found(query: str) -> list[str]:
        answer = await api(client, "GET", f"/api/interactions?{query}", tokens.viewer)
        assert answer.status == 200, answer.body
        return [row["provider_id"] for row in answer.body]

    assert await found("customer=%2B420%20601%20234%20567") == ["CA3", "CA1"]
    assert await found("customer=00420-777-888-999") == ["CA2"]
    assert await found("customer=%2B420601234568") == []
    assert await found("provider_id=CA2") == ["CA2"]
    assert await found("category=product") == ["CA3", "CA2"]
    assert await found("category=admin&customer=%2B420601234567") == ["CA1"]
    assert await found("destination=hotline&outcome=routed") == ["CA3", "CA2", "CA1"]
    assert await found("destination=partner") == []
    assert await found("outcome=answered") == []


async def test_pages_run_newest_first_after_the_last_row_and_link_the_next(
    client: Client, tokens: Tokens
) -> None:
    for number in range(1, 6):
        await route(client, f"CA{number}", Digits="1")
    first = await api(client, "GET", "/api/interactions?limit=2", tokens.viewer)
    assert [row["provider_id"] for row in first.body] == ["CA5", "CA4"]
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and f"before={first.body[-1]['id']}" in link
    await route(client, "CA6", Digits="1")  # a new contact does not move the pages
    following = link[1:].partition(">")[0]
    second = await api(client, "GET", following, tokens.viewer)
    assert [row["provider_id"] for row in second.body] == ["CA3", "CA2"]
    last = await api(
        client, "GET", f"/api/interactions?limit=2&before={second.body[-1]['id']}", tokens.viewer
    )
    assert [row["provider_id"] for row in last.body] == ["CA1"]
    assert "Link" not in last.headers


async def test_newest_means_received_last_and_pages_follow_it(migrated: Store) -> None:
    """A call abandoned in the menu is recorded when it ends, after contacts that rang
    later: it is listed where it was received, and a page boundary between contacts received
    at the same moment loses none and repeats none."""
    minute = timedelta(minutes=1)
    ids = await seed(
        migrated,
        contact("CA-late", received_at=NOW),
        contact("CA-tie-1", received_at=NOW - minute),
        contact("CA-tie-2", received_at=NOW - minute),
        contact("CA-abandoned", received_at=NOW - 2 * minute, outcome=Outcome.ABANDONED),
    )
    assert ids == sorted(ids)  # recorded in this order
    expected = ["CA-late", "CA-tie-2", "CA-tie-1", "CA-abandoned"]
    every = await migrated.search_interactions(InteractionSearch(limit=None))
    assert [row.provider_id for row in every] == expected
    seen: list[str] = []
    before = None
    for _ in range(5):  # bounded: four rows, pages of one
        page = await migrated.search_interactions(InteractionSearch(before=before, limit=1))
        if not page:
            break
        seen.append(page[0].provider_id)
        before = page[0].id
    assert seen == expected


async def test_bad_search_values_are_422_listing_each(client: Client, tokens: Tokens) -> None:
    answer = await api(
        client,
        "GET",
        "/api/interactions?category=billing&before=abc&customer=%2B42&outcome=lost",
        tokens.viewer,
    )
    assert sorted(problem_paths(answer)) == ["before", "category", "customer", "outcome"]
    messages = " ".join(p["message"] for p in answer.body["problems"])
    assert "E.164" in messages


async def test_the_customer_search_reads_the_index_on_sqlite(migrated: Store) -> None:
    async def reads(store: Store) -> None:
        await store.search_interactions(InteractionSearch(customer_hash="h", limit=10))
        await store.search_interactions(InteractionSearch(destination="partner", limit=10))
        await store.search_interactions(InteractionSearch(provider_id="CA1", limit=10))

    customer, destination, provider = await query_plans(migrated.engine, "interactions", reads)
    for plan, index in (
        (customer, "ix_interactions_customer_hash_received_at"),
        (destination, "ix_interactions_destination_received_at"),
    ):
        assert index in plan and "TEMP B-TREE" not in plan, plan
    assert "uq_interaction_provider" in provider or "autoindex" in provider, provider


async def test_the_customer_search_reads_the_index_on_postgresql(
    postgres_database_url: str,
) -> None:
    async with migrated_store(postgres_database_url) as store:
        await seed(store, *(contact(f"CA{n}", customer=f"+42060123{n:04d}") for n in range(50)))
        async with store.engine.connect() as connection:
            await connection.execute(sa.text("ANALYZE interactions"))
            await connection.execute(sa.text("SET enable_seqscan = off"))
            plan = "\n".join(
                row[0]
                for row in await connection.execute(
                    sa.text(
                        "EXPLAIN SELECT * FROM interactions WHERE customer_hash = :h "
                        "ORDER BY id DESC LIMIT 100"
                    ),
                    {"h": "x"},
                )
            )
    assert "ix_interactions_customer_hash_received_at" in plan, plan


def test_the_cli_searches_pages_and_shows_one_contact(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "SWITCHBOARD_CUSTOMER_KEY_SECRET": SECRET}

    async def prepare() -> list[int]:
        async with migrated_store(env["SWITCHBOARD_DATABASE_URL"]) as store:
            await apply_document(store, shipped_document(), actor="t", reason="t", now=NOW)
            ids = await seed(
                store,
                contact("CA1"),
                contact("CA2", customer=OTHER),
                contact("jana-1", customer="jana@example.com", channel=Channel.EMAIL),
                contact("CA3"),
            )
            async with store.unit_of_work() as uow:
                await uow.add_attempt(
                    ids[0],
                    NewAttempt(
                        at=NOW,
                        kind=AttemptKind.DIAL,
                        number=1,
                        destination="hotline",
                        address="+420222333444",
                        status="completed",
                        seconds=95,
                    ),
                )
            return ids

    ids = asyncio.run(prepare())
    listed = invoke(env, "interactions", "--customer", "+420 601 234 567", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert [row["provider_id"] for row in json.loads(listed.output)] == ["CA3", "CA1"]
    by_mail = invoke(env, "interactions", "--customer", "Jana@Example.com", "--format", "json")
    assert [row["id"] for row in json.loads(by_mail.output)] == [ids[2]]
    page = invoke(env, "interactions", "--limit", "2", "--before", str(ids[3]))
    assert page.exit_code == 0 and f"#{ids[2]}" in page.output and f"#{ids[1]}" in page.output
    assert f"--before {ids[1]}" in page.output  # the next page (click's runner mixes stderr)
    assert invoke(env, "interactions").output.count("\n") == 4  # the old form works as before
    bad = invoke(env, "interactions", "--customer", "+42")
    assert bad.exit_code == 2 and "E.164" in bad.output
    shown = invoke(env, "interactions", "show", str(ids[0]), "--format", "json")
    detail = json.loads(shown.output)
    assert detail["interaction"]["provider_id"] == "CA1"
    assert [(a["kind"], a["status"], a["seconds"]) for a in detail["attempts"]] == [
        ("dial", "completed", 95)
    ]
    table = invoke(env, "interactions", "show", str(ids[0])).output
    assert "attempts:" in table and "+420222333444" in table and "completed" in table
    missing = invoke(env, "interactions", "show", "999")
    assert missing.exit_code == 1 and "there is no interaction 999" in missing.output


# -- 2 and 3. attempts and one contact -----------------------------------------------------------


async def test_a_call_shows_every_dial_and_its_voicemail_in_order(
    client: Client, tokens: Tokens, clock: Clock
) -> None:
    clock.set(NOW.replace(hour=9))
    _, action = dialled(await route(client, "CA9", Digits="2"))  # product -> hotline
    _, fallback = dialled(await dial_status(client, action, "no-answer", sid="CA9"))
    clock.advance(timedelta(seconds=30))
    voicemail = await dial_status(client, fallback, "busy", sid="CA9")
    record = ET.fromstring(voicemail).find("Record")
    assert record is not None
    form = {
        "CallSid": "CA9",
        "From": CALLER,
        "RecordingUrl": "https://api.twilio.com/R1",
        "RecordingDuration": "42",
    }
    answered = await post_twilio(client, record.attrib["action"].removeprefix(PUBLIC_URL), form)
    assert answered.status == 200
    [row] = (await api(client, "GET", "/api/interactions?provider_id=CA9", tokens.viewer)).body
    detail = await api(client, "GET", f"/api/interactions/{row['id']}", tokens.viewer)
    assert detail.status == 200
    assert [
        (a["kind"], a["number"], a["destination"], a["address"], a["status"])
        for a in detail.body["attempts"]
    ] == [
        ("dial", 1, "hotline", "+420222333444", "no-answer"),
        ("dial", 2, "partner", "+420800100200", "busy"),
        ("voicemail", 1, "hotline", None, "recorded"),
    ]
    assert detail.body["recordings"] == [
        {
            "kind": "voicemail",
            "url": "https://api.twilio.com/R1",
            "at": detail.body["attempts"][2]["at"],
            "seconds": 42,
        }
    ]
    assert [f["kind"] for f in detail.body["forwards"]] == ["email"]  # the voicemail email
    assert "payload" not in detail.body["forwards"][0]
    assert detail.body["interaction"]["outcome"] == "voicemail"
    assert detail.body["feedback"] is None


async def test_an_unknown_or_malformed_id_is_404_or_422(client: Client, tokens: Tokens) -> None:
    missing = await api(client, "GET", "/api/interactions/424242", tokens.viewer)
    assert missing.status == 404 and "424242" in missing.body["error"]
    assert problem_paths(await api(client, "GET", "/api/interactions/abc", tokens.viewer)) == ["id"]


async def test_each_outbox_send_is_an_attempt_written_with_its_result(migrated: Store) -> None:
    [first, second] = await seed(
        migrated, contact("<a@x>", channel=Channel.EMAIL), contact("<b@x>", channel=Channel.EMAIL)
    )
    partner = Target("partner", "eshop@partner.example", external=True)
    async with migrated.unit_of_work() as uow:
        for interaction_id in (first, second):
            await uow.add_forward(
                interaction_id, new_forward(Channel.EMAIL, partner, b"x", {}, NOW)
            )
    claimed = await migrated.claim_outbox(
        now=NOW, lease=timedelta(seconds=60), limit=10, kinds=["email"]
    )
    by_interaction = {row.interaction_id: row for row in claimed}
    failure = FailedAttempt(
        ForwardStatus.PENDING,
        "451 try later",
        attempts=1,
        next_attempt_at=NOW + timedelta(seconds=1),
    )
    await migrated.outbox_settled(
        delivered=[by_interaction[first]], failed=[(by_interaction[second], failure)], now=NOW
    )
    [delivered] = await migrated.attempts_of(first)
    [failed] = await migrated.attempts_of(second)
    assert (delivered.kind, delivered.number, delivered.status, delivered.error) == (
        "delivery",
        1,
        "delivered",
        None,
    )
    assert (failed.address, failed.status, failed.error) == (
        "eshop@partner.example",
        "pending",
        "451 try later",
    )


# -- 4. call recording ----------------------------------------------------------------------------


async def recorded_app(started_apps: Any, settings: Any, clock: Clock) -> Client:
    from .conftest import store_document

    data = shipped_data()
    data["destinations"]["hotline"]["record"] = True
    await store_document(settings, data, clock())
    app: Client = await started_apps(settings)
    return app


async def test_a_recorded_destination_records_the_dial_and_keeps_the_link_once(
    started_apps: Any, settings: Any, clock: Clock, store: Store
) -> None:
    client = await recorded_app(started_apps, settings, clock)
    body = await route(client, "CA7", Digits="2")  # product -> hotline, which records
    dial = ET.fromstring(body).find("Dial")
    assert dial is not None
    assert dial.attrib["record"] == "record-from-answer-dual"
    assert dial.attrib["recordingStatusCallbackEvent"] == "completed"
    callback = dial.attrib["recordingStatusCallback"]
    assert callback == f"{PUBLIC_URL}{RECORDING}?attempt=1&destination=hotline"
    _, action = dialled(await route(client, "CA8", Digits="1"))
    fallback = ET.fromstring(await dial_status(client, action, "busy", sid="CA8")).find("Dial")
    assert fallback is not None and "record" not in fallback.attrib  # the partner does not
    form = {
        "CallSid": "CA7",
        "RecordingSid": "RE1",
        "RecordingStatus": "completed",
        "RecordingUrl": "https://api.twilio.com/RE1",
        "RecordingDuration": "61",
    }
    for _ in range(2):  # Twilio's retry records nothing twice
        answer = await post_twilio(client, callback.removeprefix(PUBLIC_URL), form)
        assert answer.status == 200
    [row] = await store.search_interactions(InteractionSearch(provider_id="CA7"))
    [attempt] = [a for a in await store.attempts_of(row.id) if a.kind == "recording"]
    assert (attempt.url, attempt.seconds, attempt.provider_ref, attempt.destination) == (
        "https://api.twilio.com/RE1",
        61,
        "RE1",
        "hotline",
    )
    unknown = {**form, "CallSid": "CA-never", "RecordingSid": "RE2"}
    assert (await post_twilio(client, RECORDING, unknown)).status == 200
    unsigned = await client.post(RECORDING, data=form, headers={"X-Twilio-Signature": "x"})
    assert unsigned.status == 403
    no_sid = await post_twilio(client, RECORDING, {"CallSid": "CA7"})
    assert no_sid.status == 400


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_record_must_be_a_boolean(value: object) -> None:
    data = shipped_data()
    data["destinations"]["partner"]["record"] = value
    with pytest.raises(DocumentInvalid) as raised:
        validate_document(data)
    assert [p.path for p in raised.value.problems] == ["destinations.partner.record"]


# -- 5. retention ----------------------------------------------------------------------------------

OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


async def seed_for_retention(store: Store) -> dict[str, int]:
    """An old and a recent contact, each with a recording, a comment, two forwards still
    holding their body (one failed, one pending), and an attempt with an error and one with
    a recording link."""
    await apply_document(store, shipped_document(), actor="t", reason="t", now=OLD)
    ids: dict[str, int] = {}
    partner = Target("partner", "eshop@partner.example", external=True)
    for name, at in (("old", OLD), ("recent", RECENT)):
        [interaction_id] = await seed(
            store,
            contact(f"CA-{name}", destination="partner", received_at=at, outcome=Outcome.VOICEMAIL),
        )
        ids[name] = interaction_id
        async with store.unit_of_work() as uow:
            for _ in ("failed", "pending"):
                await uow.add_forward(
                    interaction_id, new_forward(Channel.EMAIL, partner, b"body", {}, at)
                )
            await uow.add_attempt(
                interaction_id,
                NewAttempt(
                    at=at,
                    kind=AttemptKind.DELIVERY,
                    number=1,
                    destination="partner",
                    status="pending",
                    error="550 <jana@example.com> unknown",
                ),
            )
            await uow.add_attempt(
                interaction_id,
                NewAttempt(
                    at=at,
                    kind=AttemptKind.RECORDING,
                    number=1,
                    destination="hotline",
                    status="completed",
                    url=f"https://api.twilio.com/{name}",
                ),
            )
        async with store.transaction() as connection:
            await connection.execute(
                sa.text("UPDATE interactions SET recording_url = :url WHERE id = :id"),
                {"url": f"https://api.twilio.com/vm-{name}", "id": interaction_id},
            )
            # the first forward failed for good (its body is personal data kept for
            # nothing); the second is still owed: an SMTP outage longer than the retention
            await connection.execute(
                sa.text(
                    "UPDATE outbox SET status = 'failed', last_error = '550 <jana@example.com>' "
                    "WHERE id = (SELECT min(id) FROM outbox WHERE interaction_id = :id)"
                ),
                {"id": interaction_id},
            )
        await store.record_feedback(
            interaction_id, PartnerFeedback("resolved", 4, "called back", at)
        )
    return ids


async def kept(store: Store, interaction_id: int) -> dict[str, Any]:
    row = await store.interaction(interaction_id)
    assert row is not None
    forwards = await store.forwards_of(interaction_id)
    return {
        "recording_url": row.recording_url,
        "comment": row.partner_comment,
        "rating": row.partner_rating,
        "outcome": row.outcome,
        "forwards": [(f.status, f.payload, f.last_error) for f in forwards],
        "attempts": [(a.kind, a.error, a.url) for a in await store.attempts_of(interaction_id)],
    }


async def check_retention(store: Store) -> None:
    ids = await seed_for_retention(store)
    period = {"since": OLD - timedelta(days=1), "until": OLD + timedelta(days=1)}
    before = (await contacts_report(store, **period)).model_dump()
    october = Month(2026, 10)
    statement = (await month_statement(store, month=october, now=NOW)).model_dump()
    assert sum(line["voicemails"] for line in statement["lines"]) == 1  # the old one
    recent_before = await kept(store, ids["recent"])
    assert await retention_due(store, NOW, 30) == RetentionCounts(1, 2, 1, 1)  # a dry run
    counts = await apply_retention(store, NOW, 30, batch=1)  # batches of one: the loop runs
    assert counts is not None
    assert counts.as_json() == {"payloads": 1, "recordings": 2, "comments": 1, "errors": 1}
    assert await kept(store, ids["old"]) == {
        "recording_url": None,
        "comment": None,
        "rating": 4,
        "outcome": "voicemail",
        "forwards": [
            ("failed", None, "body deleted after 30 days (SWITCHBOARD_RETENTION_DAYS)"),
            ("pending", b"body", None),  # still owed: never emptied nor failed
        ],
        "attempts": [("delivery", None, None), ("recording", None, None)],
    }
    assert await kept(store, ids["recent"]) == recent_before
    assert [payload for _, payload, _ in recent_before["forwards"]] == [b"body", b"body"]
    assert (await contacts_report(store, **period)).model_dump() == before
    assert (await month_statement(store, month=october, now=NOW)).model_dump() == statement
    assert await apply_retention(store, NOW + timedelta(hours=1), 30) is None  # once a day
    again = await apply_retention(store, NOW + timedelta(days=1), 30)
    assert again is not None and again.total == 0


async def test_retention_batches_go_on_after_the_rows_read_before(migrated: Store) -> None:
    """Each batch starts after the last row the one before read, so a large backlog is read
    once, and the run ends with the batch that finds nothing left."""
    ids = await seed_for_retention(migrated)
    cutoff = NOW - timedelta(days=30)
    note = "emptied"
    first = await migrated.retention_batch(cutoff=cutoff, now=NOW, batch=1, note=note)
    assert first is not None
    counts, cursor = first
    assert cursor == RetentionCursor(ids["old"], cursor.attempts, cursor.outbox)
    # one row of each table: the old contact (its voicemail link and comment), its failed
    # forward's body, its first attempt (an error)
    assert counts == RetentionCounts(payloads=1, recordings=1, comments=1, errors=1)
    second = await migrated.retention_batch(
        cutoff=cutoff, now=NOW, batch=1, note=note, cursor=cursor
    )
    assert second is not None
    more, after = second
    # then its second attempt (a recording link); the rest was read already
    assert after.attempts > cursor.attempts and more == RetentionCounts(recordings=1)
    last = await migrated.retention_batch(cutoff=cutoff, now=NOW, batch=1, note=note, cursor=after)
    assert last == (RetentionCounts(), after)  # nothing left after it: the run ends


async def test_retention_empties_old_personal_data_and_keeps_counts_on_sqlite(
    migrated: Store,
) -> None:
    await check_retention(migrated)


async def test_retention_empties_old_personal_data_and_keeps_counts_on_postgresql(
    postgres_database_url: str,
) -> None:
    async with migrated_store(postgres_database_url) as store:
        await check_retention(store)


async def test_two_replicas_running_retention_at_once_run_it_once(
    postgres_database_url: str,
) -> None:
    async with (
        migrated_store(postgres_database_url) as first,
        migrated_store(postgres_database_url) as second,
    ):
        await seed_for_retention(first)
        results = await asyncio.gather(
            apply_retention(first, NOW, 30), apply_retention(second, NOW, 30)
        )
        assert sorted(r is None for r in results) == [False, True]
        done = next(r for r in results if r is not None)
        assert done.as_json() == {"payloads": 1, "recordings": 2, "comments": 1, "errors": 1}
        async with first.connected() as connection:
            runs = (
                await connection.execute(sa.text("SELECT job, period, counts FROM scheduled_runs"))
            ).all()
        assert [(job, period, json.loads(c)) for job, period, c in runs] == [
            ("retention", NOW.astimezone(UTC).date().isoformat(), done.as_json())
        ]


def test_retention_run_by_hand_counts_then_empties(env: dict[str, str]) -> None:
    async def prepare() -> None:
        async with migrated_store(env["SWITCHBOARD_DATABASE_URL"]) as store:
            await seed_for_retention(store)

    asyncio.run(prepare())
    off = invoke(env, "retention", "run")
    assert off.exit_code == 1 and "retention is off" in off.output
    env = {**env, "SWITCHBOARD_RETENTION_DAYS": "30"}
    # the CLI runs on the real clock: the old contact (NOW - 40 days) is past 30 days
    dry = json.loads(
        invoke(env, "retention", "run", "--dry-run", "--days", "3650", "--format", "json").output
    )
    assert dry["dry_run"] is True and dry["payloads"] == 0
    every = json.loads(invoke(env, "retention", "run", "--dry-run", "--format", "json").output)
    assert every["payloads"] >= 1 and every["comments"] >= 1
    wet = json.loads(invoke(env, "retention", "run", "--format", "json").output)
    assert {k: wet[k] for k in ("payloads", "recordings", "comments", "errors")} == {
        k: every[k] for k in ("payloads", "recordings", "comments", "errors")
    }
    after = json.loads(invoke(env, "retention", "run", "--dry-run", "--format", "json").output)
    assert after["payloads"] == after["recordings"] == after["comments"] == after["errors"] == 0
    text = invoke(env, "retention", "run").output
    assert "emptied 0 forward bodies" in text


@pytest.mark.parametrize(
    ("value", "days", "warned"),
    [
        (None, None, False),
        ("0", None, False),
        ("30", 30, False),
        ("-3", None, True),
        ("30d", None, True),
    ],
)
def test_retention_days_setting(value: str | None, days: int | None, warned: bool) -> None:
    environ = {} if value is None else {"SWITCHBOARD_RETENTION_DAYS": value}
    settings = load_settings(environ)
    assert settings.retention_days == days
    assert any("SWITCHBOARD_RETENTION_DAYS" in w for w in settings.warnings) == warned
