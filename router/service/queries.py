"""Read models: status, traffic, the report, staffing, service levels and impact previews."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import structlog

from router.core.contact import Category, Channel
from router.core.document import RoutingDocument
from router.core.migration import (
    Impact,
    Recorded,
    cancelled_return,
    cut_over,
    impact,
    rollback_in_force,
    shares_of,
)
from router.core.prices import PriceList, day_starts, in_force_by_day, local_days
from router.core.report import Count, Report, build_report
from router.core.sla import AnswerTime, DialTally, FeedbackTally, ForwardTally, Sla, build_sla
from router.core.staffing import RecordedCall, Staffing, Target, build_staffing, whole_hours
from router.core.statement import DayHandled, Month, Statement, build_statement, previous_month
from router.core.traffic import Traffic, hourly, window
from router.service.records import VersionRecord
from router.service.versions import NoRouting, current_or_raise, stored_document
from router.service.views import STATUS_CONVERSATIONS, impact_json, status_json
from router.store import Store

log = structlog.get_logger(__name__)


#: How far back status looks for conversations the partner still holds.
CONVERSATION_WINDOW = timedelta(days=30)


async def routing_status(
    store: Store, now: datetime, *, conversations: int | None = STATUS_CONVERSATIONS
) -> dict[str, Any]:
    """What `status --format json` and GET /api/status show; *conversations* caps the
    held conversations listed (None: all)."""
    history = await store.history()
    if not history:
        raise NoRouting("the database holds no routing version yet")
    current = history[0]
    document = stored_document(current)
    in_force = rollback_in_force(current)
    cancelled = cancelled_return(history, now)
    # A conversation comes back in-house with its next message after a rollback; until
    # then the partner holds it, however long ago its last contact was (within a window
    # that bounds the query).
    external = [name for name in document.destinations if document.is_external(name)]
    held = await store.conversations_held(now - CONVERSATION_WINDOW, external, limit=conversations)
    return status_json(
        current,
        shares=shares_of(document),
        in_force=in_force,
        cancelled=cancelled,
        steps=await store.plan_steps(),
        outbox=await store.outbox_depth(),
        held=held,
        now=now,
    )


async def contacts_per_hour(store: Store, now: datetime, hours: int) -> Traffic:
    """The last *hours* hours of contacts per destination and channel (``GET
    /api/traffic``); destinations' kinds from the routing in force."""
    since, until = window(now, hours)
    document = stored_document(await current_or_raise(store))
    return hourly(await store.contacts_per_hour(since, until), document, since, until)


def price_list(row: VersionRecord) -> PriceList:
    """What routing version *row* says about money."""
    document = stored_document(row)
    kinds = {
        name: "external" if document.is_external(name) else "in_house"
        for name in document.destinations
    }
    return PriceList(row.version, row.created_at, document.costs, kinds)


async def prices_by_day(
    store: Store, days: Sequence[date], zone: tzinfo
) -> dict[date, PriceList | None]:
    """The price list in force on each of *days* (router/core/prices.py says which)."""
    if not days:
        return {}
    starts = day_starts(days, zone)
    rows = await store.versions_in_force(starts[0], starts[-1])
    return in_force_by_day([price_list(row) for row in rows], days, zone)


async def contacts_report(store: Store, *, since: datetime, until: datetime) -> Report:
    """What contacts received in [*since*, *until*) went where and what that cost
    (``switchboard report``, ``GET /api/report``).

    Each contact is priced with the ``costs`` of the routing version in force on its day in
    the current document's timezone (router/core/prices.py); destinations are listed with
    their kinds in the current version."""
    current = await current_or_raise(store)
    document = stored_document(current)
    zone = document.zone
    days = local_days(since, until, zone)
    starts = day_starts(days, zone)[1:-1]  # the midnights inside the period
    counts = [
        Count(days[number], channel, destination, first, category, outcome, contacts)
        for number, channel, destination, first, category, outcome, contacts in (
            await store.report_counts(since, until, starts)
        )
    ]
    return build_report(
        counts,
        current=price_list(current),
        prices=await prices_by_day(store, days, zone),
        days=days,
        timezone=document.timezone,
        since=since,
        until=until,
    )


async def month_statement(store: Store, *, month: Month | None, now: datetime) -> Statement:
    """What the external destinations are owed for *month* (default: the last whole month in
    the routing timezone at *now*): ``switchboard statement``, ``GET /api/statement``.
    Each day is priced by the routing version in force that day (router/core/prices.py)."""
    document = stored_document(await current_or_raise(store))
    zone = document.zone
    chosen = month if month is not None else previous_month(now, zone)
    days = chosen.days()
    starts = day_starts(days, zone)
    rows = [
        DayHandled(days[number], channel, destination, outcome, contacts, voicemails)
        for number, channel, destination, outcome, contacts, voicemails in (
            await store.handled_per_day(starts[0], starts[-1], starts[1:-1])
        )
    ]
    return build_statement(
        rows,
        month=chosen,
        prices=await prices_by_day(store, days, zone),
        timezone=document.timezone,
        since=starts[0],
        until=starts[-1],
    )


async def cutover_preview(
    store: Store,
    channel: Channel | None,
    category: Category | None,
    percent: float,
    *,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """What a cut-over would have changed over the last *days*; nothing is stored."""
    current = await current_or_raise(store)
    before = stored_document(current)
    after = cut_over(before, channel, category, percent)
    result = await preview_impact(store, before, after, days=days, now=now)
    return impact_json(current.version, days, result)


async def preview_impact(
    store: Store,
    before: RoutingDocument,
    after: RoutingDocument,
    *,
    days: int,
    now: datetime,
) -> Impact:
    rows = await store.replay_rows(now - timedelta(days=days))
    recorded = [
        Recorded(Channel(channel), Category(category), bucket_value, received_at)
        for channel, category, bucket_value, received_at in rows
    ]
    return impact(recorded, before, after)


async def hotline_staffing(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    target: Target,
    patience: timedelta | None = None,
) -> Staffing:
    """The agents the in-house destinations need per hour of the week to answer *target*,
    from the calls received in [*since*, *until*) replayed through the routing in force
    and through its baseline (``switchboard staffing``, ``GET /api/staffing``).

    The period is cut to whole hours of the document's timezone first
    (:class:`~router.core.staffing.StaffingError` when none is left). With callers' mean
    *patience*, Erlang A instead of Erlang C."""
    current = await current_or_raise(store)
    document = stored_document(current)
    start, end = whole_hours(since, until, document.zone)
    calls = [
        RecordedCall(Category(category), bucket_value, received_at, outcome, talk, whole)
        for category, bucket_value, received_at, outcome, talk, whole in (
            await store.staffing_calls(start, end)
        )
    ]
    return build_staffing(
        calls,
        document,
        version=current.version,
        since=start,
        until=end,
        target=target,
        patience=None if patience is None else patience.total_seconds(),
    )


async def partner_sla(store: Store, *, since: datetime, until: datetime) -> Sla:
    """The external destinations' service levels over the contacts received in [*since*,
    *until*), against the targets (``sla:``) of the routing in force now, whatever version
    routed each contact: the contract is today's (``switchboard sla``, ``GET /api/sla``)."""
    current = await current_or_raise(store)
    return build_sla(
        stored_document(current),
        version=current.version,
        since=since,
        until=until,
        dials=[DialTally(*row) for row in await store.sla_dials(since, until)],
        answer_times=[AnswerTime(*row) for row in await store.sla_answer_times(since, until)],
        forwards=[ForwardTally(*row) for row in await store.sla_forwards(since, until)],
        feedback=[FeedbackTally(*row) for row in await store.sla_feedback(since, until)],
    )
