"""ib referral clicks: first/last-click attribution of registrations

Revision ID: 0007_clicks
Revises: 0007
Create Date: 2026-11-24 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
from alembic import op

revision: str = "0007_clicks"
# Chained after the accrual helper's 0007 so that the migrations keep a single head.
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ib_referral_clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("ib_id", sa.String(length=32), nullable=False),
        sa.Column("link_code", sa.String(length=40), nullable=True),
        sa.Column("visitor_id", sa.String(length=64), nullable=False),
        sa.Column("clicked_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_ib_referral_clicks_brand_id_brands")
        ),
        sa.ForeignKeyConstraint(
            ["ib_id"], ["ib_partners.id"], name=op.f("fk_ib_referral_clicks_ib_id_ib_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ib_referral_clicks")),
    )
    with op.batch_alter_table("ib_referral_clicks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ib_referral_clicks_visitor",
            ["brand_id", "visitor_id", "clicked_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("ib_referral_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_ib_referral_clicks_visitor")
    op.drop_table("ib_referral_clicks")
