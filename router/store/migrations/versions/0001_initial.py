"""Routing versions, interactions and stored webhook replies.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "routing_versions",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("provider_id", sa.String(), nullable=False),
        sa.Column("customer_hash", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("category_source", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("first_destination", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Float(), nullable=False),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("decided_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("delivery_failed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("dial_status", sa.String(), nullable=True),
        sa.Column("fallback_status", sa.String(), nullable=True),
        sa.Column("call_status", sa.String(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("recording_url", sa.String(), nullable=True),
        sa.UniqueConstraint("channel", "provider_id", name="uq_interaction_provider"),
    )
    op.create_index("ix_interactions_received_at", "interactions", ["received_at"])
    op.create_table(
        "webhook_replies",
        sa.Column("provider_id", sa.String(), primary_key=True),
        sa.Column("step", sa.String(), primary_key=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_replies")
    op.drop_index("ix_interactions_received_at", table_name="interactions")
    op.drop_table("interactions")
    op.drop_table("routing_versions")
