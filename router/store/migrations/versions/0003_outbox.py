"""The durable outbox of forwards, provider tokens already seen, partner feedback.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("interactions") as table:
        table.add_column(sa.Column("partner_outcome", sa.String(), nullable=True))
        table.add_column(sa.Column("partner_rating", sa.Integer(), nullable=True))
        table.add_column(sa.Column("partner_comment", sa.Text(), nullable=True))
        table.add_column(sa.Column("feedback_at", _TIME, nullable=True))
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("interaction_id", sa.Integer(), sa.ForeignKey("interactions.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("external", sa.Boolean(), nullable=False),
        sa.Column("fallback", sa.String(), nullable=True),
        sa.Column("fallback_address", sa.String(), nullable=True),
        sa.Column("fallback_external", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("claimed_until", _TIME, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("delivered_at", _TIME, nullable=True),
    )
    op.create_index("ix_outbox_interaction_id", "outbox", ["interaction_id"])
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
    op.create_table(
        "seen_tokens",
        sa.Column("provider", sa.String(), primary_key=True),
        sa.Column("token", sa.String(), primary_key=True),
        sa.Column("seen_at", _TIME, nullable=False),
    )
    op.create_index("ix_seen_tokens_seen_at", "seen_tokens", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_seen_tokens_seen_at", table_name="seen_tokens")
    op.drop_table("seen_tokens")
    op.drop_index("ix_outbox_next_attempt_at", table_name="outbox")
    op.drop_index("ix_outbox_status", table_name="outbox")
    op.drop_index("ix_outbox_interaction_id", table_name="outbox")
    op.drop_table("outbox")
    with op.batch_alter_table("interactions") as table:
        for column in ("feedback_at", "partner_comment", "partner_rating", "partner_outcome"):
            table.drop_column(column)
