"""rules: geofences and their per-car state, alert rules, alerts, DTCs, maintenance plans, trips

Revision ID: 0004
Revises: 0003

Hand-written so it reads the same on SQLite and PostgreSQL: plain CREATE TABLE / CREATE
INDEX with constraint names spelled out as storage/tables.py's naming convention makes them.

Chained to 0003 (the safety migration).
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _fk(table: str, column: str, target: str, ondelete: str = 'CASCADE') -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f'{target}.id'], name=f'fk_{table}_{column}_{target}',
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        'geofences',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('vehicle_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('center_lat', sa.Float(), nullable=True),
        sa.Column('center_lon', sa.Float(), nullable=True),
        sa.Column('radius_m', sa.Float(), nullable=True),
        sa.Column('geometry', sa.JSON(), nullable=True),
        sa.Column('created_ms', sa.BigInteger(), nullable=False),
        _fk('geofences', 'owner_id', 'users'),
        _fk('geofences', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('id', name='pk_geofences'),
    )
    op.create_index('ix_geofences_owner_id', 'geofences', ['owner_id'])

    op.create_table(
        'geofence_states',
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('geofence_id', sa.Integer(), nullable=False),
        sa.Column('inside', sa.Boolean(), nullable=False),
        sa.Column('since_ms', sa.BigInteger(), nullable=False),
        _fk('geofence_states', 'vehicle_id', 'vehicles'),
        sa.ForeignKeyConstraint(['geofence_id'], ['geofences.id'],
                                name='fk_geofence_states_geofence_id_geofences', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('vehicle_id', 'geofence_id', name='pk_geofence_states'),
    )

    op.create_table(
        'alert_rules',
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('speed_limit_kmh', sa.Float(), nullable=True),
        sa.Column('curfew_start_min', sa.Integer(), nullable=True),
        sa.Column('curfew_end_min', sa.Integer(), nullable=True),
        sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False),
        _fk('alert_rules', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('vehicle_id', name='pk_alert_rules'),
    )

    op.create_table(
        'alerts',
        sa.Column('id', BigId, nullable=False),
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('ts_ms', sa.BigInteger(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        _fk('alerts', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('id', name='pk_alerts'),
        sa.UniqueConstraint('key', name='uq_alerts_key'),
    )
    op.create_index('ix_alerts_vehicle_ts', 'alerts', ['vehicle_id', 'ts_ms'])

    op.create_table(
        'dtcs',
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('first_seen_ms', sa.BigInteger(), nullable=False),
        sa.Column('last_seen_ms', sa.BigInteger(), nullable=False),
        sa.Column('cleared_ms', sa.BigInteger(), nullable=True),
        sa.Column('freeze_frame', sa.JSON(), nullable=True),
        _fk('dtcs', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('vehicle_id', 'code', name='pk_dtcs'),
    )

    op.create_table(
        'maintenance_plans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('every_km', sa.Float(), nullable=True),
        sa.Column('every_days', sa.Float(), nullable=True),
        sa.Column('last_done_km', sa.Float(), nullable=True),
        sa.Column('last_done_ms', sa.BigInteger(), nullable=False),
        sa.Column('notified_ms', sa.BigInteger(), nullable=True),
        _fk('maintenance_plans', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('id', name='pk_maintenance_plans'),
    )
    op.create_index('ix_maintenance_plans_vehicle_id', 'maintenance_plans', ['vehicle_id'])

    op.create_table(
        'trips',
        sa.Column('id', BigId, nullable=False),
        sa.Column('vehicle_id', sa.Integer(), nullable=False),
        sa.Column('start_ms', sa.BigInteger(), nullable=False),
        sa.Column('end_ms', sa.BigInteger(), nullable=True),
        sa.Column('start_lat', sa.Float(), nullable=True),
        sa.Column('start_lon', sa.Float(), nullable=True),
        sa.Column('end_lat', sa.Float(), nullable=True),
        sa.Column('end_lon', sa.Float(), nullable=True),
        sa.Column('distance_m', sa.Float(), server_default='0', nullable=False),
        sa.Column('max_speed_kmh', sa.Float(), server_default='0', nullable=False),
        sa.Column('harsh_brakes', sa.Integer(), server_default='0', nullable=False),
        sa.Column('harsh_accels', sa.Integer(), server_default='0', nullable=False),
        sa.Column('fuel_used_pct', sa.Float(), nullable=True),
        sa.Column('fuel_used_l', sa.Float(), nullable=True),
        sa.Column('soc_used_pct', sa.Float(), nullable=True),
        sa.Column('score', sa.Float(), nullable=True),
        sa.Column('open', sa.Boolean(), nullable=False),
        sa.Column('stats', sa.JSON(), nullable=True),
        _fk('trips', 'vehicle_id', 'vehicles'),
        sa.PrimaryKeyConstraint('id', name='pk_trips'),
    )
    op.create_index('ix_trips_vehicle_start', 'trips', ['vehicle_id', 'start_ms'])


def downgrade() -> None:
    for table in ('trips', 'maintenance_plans', 'dtcs', 'alerts', 'alert_rules', 'geofence_states',
                  'geofences'):
        op.drop_table(table)
