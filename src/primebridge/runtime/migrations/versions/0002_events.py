"""Buy with Prime events: received events and their outcome, notifications.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "amazon_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=True),
        sa.Column("ordering_key", sa.String(length=255), nullable=False),
        sa.Column("event_time", sa.Double(), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("amazon_events", schema=None) as batch_op:
        batch_op.create_index("ix_amazon_events_received", ["received_at"], unique=False)
        batch_op.create_index("ix_amazon_events_order", ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("amazon_events", schema=None) as batch_op:
        batch_op.drop_index("ix_amazon_events_order")
        batch_op.drop_index("ix_amazon_events_received")
    op.drop_table("amazon_events")
