"""platform balance operations, the cursor that posts them to the ledger mirrors, and the
open positions' commission mirrored apart

Revision ID: 0010_balance_ops
Revises: 0009_ib_unpaid_deals
Create Date: 2026-12-04 21:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

import fxcrm.models.base
import fxcrm.models.types
from alembic import op

revision: str = "0010_balance_ops"
down_revision: str | None = "0009_ib_unpaid_deals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platform_balance_ops",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("server_id", sa.String(length=40), nullable=False),
        sa.Column("ticket", sa.String(length=64), nullable=False),
        sa.Column("login", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount", fxcrm.models.types.ScaledDecimal(), nullable=False),
        sa.Column("comment", sa.String(length=100), nullable=False),
        sa.Column("booked_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("ingested_at", fxcrm.models.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["platform_servers.id"],
            name=op.f("fk_platform_balance_ops_server_id_platform_servers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_balance_ops")),
        sa.UniqueConstraint(
            "server_id", "ticket", name=op.f("uq_platform_balance_ops_server_id_ticket")
        ),
    )
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ops_posted_upto", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("account_mirrors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "open_commission",
                fxcrm.models.types.ScaledDecimal(),
                server_default="0",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("account_mirrors", schema=None) as batch_op:
        batch_op.drop_column("open_commission")
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.drop_column("ops_posted_upto")
    op.drop_table("platform_balance_ops")
