"""Indexes for a million interactions: the guard's window, partner conversations.

The guard (every half second on every replica) counts the last few minutes of contacts sent
to external destinations, grouped by channel; with only ``received_at`` indexed SQLite chose
to scan the whole ``(channel, provider_id)`` index in channel order instead, 2 s a run at a
million interactions (bench/RESULTS.md). ``(first_destination, received_at)`` answers it from
the window alone. ``status`` finds each conversation's last contact of the last 30 days;
``(conversation_id, received_at)`` answers that from the index (the row id comes with it) and
serves the chat thread look-up by ``conversation_id`` as the index it replaces did.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_interactions_first_destination_received_at",
        "interactions",
        ["first_destination", "received_at"],
    )
    # the wider index first, so a chat thread look-up always has one to use
    op.create_index(
        "ix_interactions_conversation_id_received_at",
        "interactions",
        ["conversation_id", "received_at"],
    )
    op.drop_index("ix_interactions_conversation_id", table_name="interactions")


def downgrade() -> None:
    op.create_index("ix_interactions_conversation_id", "interactions", ["conversation_id"])
    op.drop_index("ix_interactions_conversation_id_received_at", table_name="interactions")
    op.drop_index("ix_interactions_first_destination_received_at", table_name="interactions")
