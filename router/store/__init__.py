"""The database adapter: tables, the engine, the store and its unit of work, migrations.

The only package that imports SQLAlchemy or SQLModel for data (``router.web.app`` also
reads SQLAlchemy's URL parser). Errors reach the service as the ports' exceptions
(:mod:`router.service.ports`), never as SQLAlchemy's.
"""

from router.store.engine import create_engine
from router.store.repository import (
    ROUTING_CHANNEL,
    Store,
    claim_plan_step,
    insert_version,
    mark_step_version,
    newest_version,
)
from router.store.tables import (
    ApiToken,
    Interaction,
    OutboxRow,
    PlanStepRow,
    RoutingVersion,
    SeenToken,
    WebhookReply,
    metadata,
)

__all__ = [
    "ROUTING_CHANNEL",
    "ApiToken",
    "Interaction",
    "OutboxRow",
    "PlanStepRow",
    "RoutingVersion",
    "SeenToken",
    "Store",
    "WebhookReply",
    "claim_plan_step",
    "create_engine",
    "insert_version",
    "mark_step_version",
    "metadata",
    "newest_version",
]
