"""The outbox claim's index: pending rows in the order they fall due.

The worker claims the pending rows due first (``status = 'pending' AND next_attempt_at <=
now ORDER BY next_attempt_at``). With ``status`` indexed alone SQLite read every pending row
and sorted them in a temporary B-tree before taking a batch of 20: 255 ms a claim with the
outbox of the million-interaction benchmark, and every claim after an SMTP outage would pay
for the whole backlog (bench/RESULTS.md). ``(status, next_attempt_at)`` hands the rows over
in order; it replaces the ``status`` index, whose every use it serves.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.drop_index("ix_outbox_status", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.drop_index("ix_outbox_status_next_attempt_at", table_name="outbox")
