"""dead letters: a digest per rejected message, so a redelivered one is kept once

Revision ID: 0006
Revises: 0005

The ingest acks a message only after its batch commits, so a worker killed in between gets
the batch again: accepted messages were already deduplicated by (car, seq), rejected ones were
dead-lettered twice. Rows from before this migration keep a NULL digest (NULLs never clash).
Matches storage/tables.py (tests/storage/test_dead_letter_migration.py checks).
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rejected_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sa.String(length=64), nullable=True))
        batch_op.create_index('uq_rejected_messages_digest', ['digest'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('rejected_messages', schema=None) as batch_op:
        batch_op.drop_index('uq_rejected_messages_digest')
        batch_op.drop_column('digest')
