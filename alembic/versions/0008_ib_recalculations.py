"""ib recalculations: staff what-ifs on a period, applied once as adjustment accruals

Revision ID: 0008_recalculations
Revises: 0007_settlement
Create Date: 2026-11-24 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
from alembic import op

revision: str = "0008_recalculations"
down_revision: str | None = "0007_settlement"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ib_recalculations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("preview", sa.JSON(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=True),
        sa.Column("target_period", sa.String(length=7), nullable=True),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(length=32), nullable=True),
        sa.Column("applied_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brands.id"], name=op.f("fk_ib_recalculations_brand_id_brands")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ib_recalculations")),
    )
    with op.batch_alter_table("ib_recalculations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ib_recalculations_brand_period", ["brand_id", "period"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ib_recalculations", schema=None) as batch_op:
        batch_op.drop_index("ix_ib_recalculations_brand_period")
    op.drop_table("ib_recalculations")
