"""token versions: logout, password change and deactivation revoke the tokens already issued

Revision ID: 0011_token_version
Revises: 0010_balance_ops
Create Date: 2026-12-04 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011_token_version"
down_revision: str | None = "0010_balance_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("staff_users", "traders", "ib_partners")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("token_version")
