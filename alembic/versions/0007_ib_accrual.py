"""ib accrual: opening deals by position (min-hold checks)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only opening deals: the accrual looks up a position's opening time to apply a plan's minimum
# holding time. Partial, so that ingesting closing deals (nearly all rows) never pays for it.
OPENING = sa.text("entry = 'in'")


def upgrade() -> None:
    op.create_index(
        "ix_closed_deals_opening_position",
        "closed_deals",
        ["server_id", "position_id"],
        sqlite_where=OPENING,
        postgresql_where=OPENING,
    )


def downgrade() -> None:
    op.drop_index("ix_closed_deals_opening_position", table_name="closed_deals")
