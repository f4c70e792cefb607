"""indexes for the secretariat's members list, read a page at a time

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 15:30:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.create_index('ix_member_status_registered', ['status', 'registered_at', 'id'], unique=False)
        batch_op.create_index('ix_member_registered', ['registered_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index('ix_member_registered')
        batch_op.drop_index('ix_member_status_registered')
