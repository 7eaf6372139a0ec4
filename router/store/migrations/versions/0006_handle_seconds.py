"""The talk time of an answered call: ``interactions.handle_seconds``.

Staffing (``switchboard staffing``) needs each answered call's handle time. The status
callback's ``CallDuration`` (``duration_seconds``) is the whole call: the IVR menu, the
ringing and, on an unanswered call, the voicemail. The ``<Dial>`` action's
``DialCallDuration`` is the time the caller was connected to the destination that answered,
which is what an agent spends on the call; it is kept here. Rows from before this revision
have none (NULL): staffing then falls back to the whole call's duration and says so.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("handle_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    # batch mode: SQLite before 3.35 cannot drop a column in place
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("handle_seconds")
