"""Inventory: last applied reading per SKU, reconciliation runs and their drift rows.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inventory_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("oms", sa.String(length=255), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("heartbeat_at", sa.Double(), nullable=False),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("cursor_position", sa.Integer(), nullable=False),
        sa.Column("cursor_sku", sa.String(length=255), nullable=True),
        sa.Column("counters", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "inventory_drift",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", _ID, sa.ForeignKey("inventory_runs.id"), nullable=False),
        sa.Column("oms", sa.String(length=32), nullable=False),
        sa.Column("seller_sku", sa.String(length=255), nullable=False),
        sa.Column("oms_item", sa.String(length=255), nullable=True),
        sa.Column("amazon_quantity", sa.String(length=32), nullable=True),
        sa.Column("oms_quantity", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("document", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "oms", "seller_sku", name="uq_inventory_drift"),
    )
    op.create_table(
        "inventory_readings",
        sa.Column("oms", sa.String(length=32), nullable=False),
        sa.Column("seller_sku", sa.String(length=255), nullable=False),
        sa.Column("oms_item", sa.String(length=255), nullable=False),
        sa.Column("quantity", sa.String(length=32), nullable=False),
        sa.Column("read_at", sa.Double(), nullable=False),
        sa.Column("amazon_updated_at", sa.Double(), nullable=True),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("document", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("oms", "seller_sku"),
    )
    op.create_table(
        "inventory_lock",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("inventory_lock")
    op.drop_table("inventory_readings")
    op.drop_table("inventory_drift")
    op.drop_table("inventory_runs")
