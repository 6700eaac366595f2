"""IB: why a deal paid nobody, once per deal

Revision ID: 0009_ib_unpaid_deals
Revises: 0008_opened
Create Date: 2026-12-04 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
from alembic import op

revision: str = "0009_ib_unpaid_deals"
down_revision: str | None = "0008_opened"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ib_unpaid_deals",
        sa.Column(
            "deal_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("closed_deals.id"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("brand_id", sa.String(32), sa.ForeignKey("brands.id"), nullable=False),
        sa.Column("server_id", sa.String(40), nullable=False),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("trader_id", sa.String(32), nullable=True),
        sa.Column("ib_id", sa.String(32), nullable=True),
        sa.Column("closed_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_ib_unpaid_deals_brand_reason", "ib_unpaid_deals", ["brand_id", "reason", "closed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_ib_unpaid_deals_brand_reason", table_name="ib_unpaid_deals")
    op.drop_table("ib_unpaid_deals")
