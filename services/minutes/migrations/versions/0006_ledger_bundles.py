"""ledger bundles: the full tlog-tiles entry bundles, gzipped

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ledger_bundle',
    sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('idx')
    )


def downgrade() -> None:
    op.drop_table('ledger_bundle')
