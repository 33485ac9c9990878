"""commands: what sent each command on its user's behalf (the audit trail's "who")

Revision ID: 0007
Revises: 0006

`requested_by` names the user; `origin` says whether they asked themselves (`user`) or a
platform service did for them (`service:theft` tracking a stolen car), and will name apps of
the developer platform (`app:<id>`). Commands recorded before this migration were all asked
for by their user, hence the default.
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=64), nullable=False, server_default='user'))


def downgrade() -> None:
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_column('origin')
