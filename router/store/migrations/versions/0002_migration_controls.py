"""Rollback metadata on versions, plan steps, API tokens, conversation ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("routing_versions") as table:
        table.add_column(sa.Column("restores", sa.Integer(), nullable=True))
        table.add_column(sa.Column("expires_at", _TIME, nullable=True))
        table.add_column(sa.Column("channel", sa.String(), nullable=True))
    with op.batch_alter_table("interactions") as table:
        table.add_column(sa.Column("conversation_id", sa.String(), nullable=True))
    op.create_index("ix_interactions_conversation_id", "interactions", ["conversation_id"])
    op.create_table(
        "plan_steps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("due_at", _TIME, nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("cutover", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
    )
    op.create_index("ix_plan_steps_due_at", "plan_steps", ["due_at"])
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False, unique=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("revoked_at", _TIME, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_index("ix_plan_steps_due_at", table_name="plan_steps")
    op.drop_table("plan_steps")
    op.drop_index("ix_interactions_conversation_id", table_name="interactions")
    with op.batch_alter_table("interactions") as table:
        table.drop_column("conversation_id")
    with op.batch_alter_table("routing_versions") as table:
        table.drop_column("channel")
        table.drop_column("expires_at")
        table.drop_column("restores")
