"""ib settlement: closed periods per brand, CPA paid and clawed back per client

Revision ID: 0007_settlement
Revises: 0007_clicks
Create Date: 2026-11-24 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
import fxcrm.models.types
from alembic import op

revision: str = "0007_settlement"
# Chained after the other IB helpers' 0007 migrations so that there is a single head.
down_revision: str | None = "0007_clicks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ib_settlement_periods",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("from_period", sa.String(length=7), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("ib_count", sa.Integer(), nullable=False),
        sa.Column("paid_count", sa.Integer(), nullable=False),
        sa.Column("paid_total", fxcrm.models.types.ScaledDecimal(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("closed_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_ib_settlement_periods_brand_id_brands")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ib_settlement_periods")),
        sa.UniqueConstraint(
            "brand_id", "period", name=op.f("uq_ib_settlement_periods_brand_id_period")
        ),
    )
    op.create_table(
        "ib_cpa_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("ib_id", sa.String(length=32), nullable=False),
        sa.Column("trader_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("amount", fxcrm.models.types.ScaledDecimal(), nullable=False),
        sa.Column("created_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_ib_cpa_events_brand_id_brands")
        ),
        sa.ForeignKeyConstraint(
            ["ib_id"], ["ib_partners.id"], name=op.f("fk_ib_cpa_events_ib_id_ib_partners")
        ),
        sa.ForeignKeyConstraint(
            ["trader_id"], ["traders.id"], name=op.f("fk_ib_cpa_events_trader_id_traders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ib_cpa_events")),
        sa.UniqueConstraint("trader_id", "kind", name=op.f("uq_ib_cpa_events_trader_id_kind")),
    )
    with op.batch_alter_table("ib_cpa_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ib_cpa_events_ib_id"), ["ib_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ib_cpa_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ib_cpa_events_ib_id"))
    op.drop_table("ib_cpa_events")
    op.drop_table("ib_settlement_periods")
