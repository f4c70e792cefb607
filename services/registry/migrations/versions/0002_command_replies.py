"""command replies (idempotency keys)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 11:55:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('command_reply',
    sa.Column('op', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reply', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('op', 'actor', 'key')
    )
    with op.batch_alter_table('command_reply', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_command_reply_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('command_reply', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_command_reply_created_at'))
    op.drop_table('command_reply')
