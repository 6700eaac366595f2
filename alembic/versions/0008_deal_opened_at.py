"""closed deals: the position's opening time, where the platform reports it

Revision ID: 0008_opened
Revises: 0008_recalculations
Create Date: 2026-11-24 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
from alembic import op

revision: str = "0008_opened"
# Chained after the other 0008 migration so that there is a single head.
down_revision: str | None = "0008_recalculations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The IB accrual looks up a position's opening time by position (fxcrm.ib.context.opening_times);
# rows without one (most MT5 deals, opening deals) stay out of the index.
KNOWN = sa.text("opened_at IS NOT NULL")


def upgrade() -> None:
    op.add_column(
        "closed_deals",
        sa.Column("opened_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_closed_deals_opened_position",
        "closed_deals",
        ["server_id", "position_id"],
        sqlite_where=KNOWN,
        postgresql_where=KNOWN,
    )


def downgrade() -> None:
    op.drop_index("ix_closed_deals_opened_position", table_name="closed_deals")
    with op.batch_alter_table("closed_deals") as batch:
        batch.drop_column("opened_at")
