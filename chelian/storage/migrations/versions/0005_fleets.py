"""fleets: named groups of cars (a car in at most one) and the users who operate them

Revision ID: 0005
Revises: 0004

Hand-written so it reads the same on SQLite and PostgreSQL: plain CREATE TABLE / CREATE
INDEX with constraint names spelled out as storage/tables.py's naming convention makes them.
Matches storage/tables_fleets.py exactly (tests/storage/test_fleets_migration.py checks).
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=f'fk_{table}_{column}_{target}',
                                   ondelete='CASCADE')


def upgrade() -> None:
    op.create_table(
        'fleets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('created_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_fleets'),
        sa.UniqueConstraint('name', name='uq_fleets_name'),
    )

    op.create_table(
        'fleet_vehicles',
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('fleet_id', sa.Integer(), nullable=False),
        sa.Column('added_ms', sa.BigInteger(), nullable=False),
        _fk('fleet_vehicles', 'vehicle_id', 'vehicles'),
        _fk('fleet_vehicles', 'fleet_id', 'fleets'),
        sa.PrimaryKeyConstraint('vehicle_id', name='pk_fleet_vehicles'),
    )
    op.create_index('ix_fleet_vehicles_fleet_id', 'fleet_vehicles', ['fleet_id'])

    op.create_table(
        'fleet_operators',
        sa.Column('fleet_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('added_ms', sa.BigInteger(), nullable=False),
        _fk('fleet_operators', 'fleet_id', 'fleets'),
        _fk('fleet_operators', 'user_id', 'users'),
        sa.PrimaryKeyConstraint('fleet_id', 'user_id', name='pk_fleet_operators'),
    )
    op.create_index('ix_fleet_operators_user_id', 'fleet_operators', ['user_id'])


def downgrade() -> None:
    for table in ('fleet_operators', 'fleet_vehicles', 'fleets'):
        op.drop_table(table)
