"""indexes for the lists read a page at a time: the decision register, votes, the electorate count

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 15:40:00
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('forum_decision', schema=None) as batch_op:
        batch_op.drop_index('ix_forum_decision_recorded_at')
        batch_op.drop_index('ix_forum_decision_commitment_code')
        batch_op.create_index('ix_forum_decision_register', ['recorded_at', 'number'], unique=False)
        batch_op.create_index('ix_forum_decision_commitment', ['commitment_code', 'superseded_by'], unique=False)
    with op.batch_alter_table('forum_vote', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forum_vote_opens_at'), ['opens_at'], unique=False)
    with op.batch_alter_table('forum_member', schema=None) as batch_op:
        batch_op.create_index('ix_forum_member_standing', ['standing', 'role'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('forum_member', schema=None) as batch_op:
        batch_op.drop_index('ix_forum_member_standing')
    with op.batch_alter_table('forum_vote', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forum_vote_opens_at'))
    with op.batch_alter_table('forum_decision', schema=None) as batch_op:
        batch_op.drop_index('ix_forum_decision_commitment')
        batch_op.drop_index('ix_forum_decision_register')
        batch_op.create_index('ix_forum_decision_commitment_code', ['commitment_code'], unique=False)
        batch_op.create_index('ix_forum_decision_recorded_at', ['recorded_at'], unique=False)
