"""A call's time to answer: ``interactions.answer_seconds`` and ``fallback_dialled_at``.

``switchboard sla`` measures how fast an external destination answers the calls dialled to
it. Twilio reports an answered ``<Dial>`` once it is over, with the time connected
(``DialCallDuration``); the ringing before it is the time from the ``<Dial>`` being given to
that report, less the time connected. The ``<Dial>`` to the first destination is given with
the route's answer (``decided_at``); the one to the fallback with the answer to the first
dial's failure, kept here as ``fallback_dialled_at``. The answered dial's figure is kept as
``answer_seconds``. Calls recorded before this revision have neither (NULL) and count in
the answer rate, not in the time to answer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("answer_seconds", sa.Float(), nullable=True))
    op.add_column(
        "interactions",
        sa.Column("fallback_dialled_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # batch mode: SQLite before 3.35 cannot drop a column in place
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("fallback_dialled_at")
        batch.drop_column("answer_seconds")
