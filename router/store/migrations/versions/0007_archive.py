"""The archive: every dial, delivery and recording attempt; the searches' indexes; once-a-day
jobs.

* ``attempts``: one row per thing that happened to a contact after it was routed — a
  ``<Dial>`` and its status, an outbox send and its result, a voicemail, a call recording —
  written in the transaction of the state change it records (``switchboard interactions
  show``). The interaction keeps only the latest state; this is the history.
* ``scheduled_runs``: a job's run for a period (retention, once a day), claimed with
  ``INSERT … ON CONFLICT DO NOTHING`` in the transaction that does the work, so it happens
  once however many replicas try.
* Indexes for ``interactions --customer`` (``customer_hash``, newest first by id) and
  ``--destination`` (``destination``, newest first by id); ``--provider-id`` uses the
  unique ``(channel, provider_id)`` index with every channel named.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("interaction_id", sa.Integer(), sa.ForeignKey("interactions.id"), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("seconds", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("provider_ref", sa.String(), nullable=True),
    )
    op.create_index("ix_attempts_interaction_id", "attempts", ["interaction_id"])
    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(), primary_key=True),
        sa.Column("period", sa.String(), primary_key=True),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("counts", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_interactions_customer_hash_received_at",
        "interactions",
        ["customer_hash", "received_at", "id"],
    )
    op.create_index(
        "ix_interactions_destination_received_at",
        "interactions",
        ["destination", "received_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_destination_received_at", table_name="interactions")
    op.drop_index("ix_interactions_customer_hash_received_at", table_name="interactions")
    op.drop_table("scheduled_runs")
    op.drop_index("ix_attempts_interaction_id", table_name="attempts")
    op.drop_table("attempts")
