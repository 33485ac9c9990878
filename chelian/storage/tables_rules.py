"""Tables of the rules capabilities: geofences, driving alerts, diagnostics and trips.

Kept apart from `tables.py` (same `metadata`, same naming convention) so these capabilities
own their schema; migration 0004 creates exactly these tables.

Per-car detector state that must survive a restart (inside/outside a geofence, the open trip)
is persisted here; everything else a detector keeps is cheap to rebuild from the next fix.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from chelian.storage.tables import BigId, metadata

geofences = Table(
    "geofences",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("center_lat", Float, nullable=True),
    Column("center_lon", Float, nullable=True),
    Column("radius_m", Float, nullable=True),
    Column("geometry", JSON, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)
"""A circle (center + radius) or a GeoJSON polygon; `vehicle_id` NULL = every car of the owner."""

geofence_states = Table(
    "geofence_states",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("geofence_id", Integer, ForeignKey("geofences.id", ondelete="CASCADE"), primary_key=True),
    Column("inside", Boolean, nullable=False),
    Column("since_ms", BigInteger, nullable=False),
)
"""The confirmed (debounced) side of each fence a car has been near, so a restart does not re-alert."""

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("speed_limit_kmh", Float, nullable=True),
    Column("curfew_start_min", Integer, nullable=True),
    Column("curfew_end_min", Integer, nullable=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("key", String(255), nullable=False),
    Column("data", JSON, nullable=False),
    UniqueConstraint("key"),
    Index("ix_alerts_vehicle_ts", "vehicle_id", "ts_ms"),
)
"""Every alert raised for a car; `key` is the event's idempotency key, so a repeat lands once."""

dtcs = Table(
    "dtcs",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("code", String(8), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("first_seen_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("cleared_ms", BigInteger, nullable=True),
    Column("freeze_frame", JSON, nullable=True),
)
"""The latest state of each trouble code a car has reported (active, pending or cleared)."""

maintenance_plans = Table(
    "maintenance_plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("every_km", Float, nullable=True),
    Column("every_days", Float, nullable=True),
    Column("last_done_km", Float, nullable=True),
    Column("last_done_ms", BigInteger, nullable=False),
    Column("notified_ms", BigInteger, nullable=True),
)
"""A recurring service (oil change every 15 000 km or 365 days) and when it was last done."""

trips = Table(
    "trips",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=True),
    Column("start_lat", Float, nullable=True),
    Column("start_lon", Float, nullable=True),
    Column("end_lat", Float, nullable=True),
    Column("end_lon", Float, nullable=True),
    Column("distance_m", Float, nullable=False, server_default="0"),
    Column("max_speed_kmh", Float, nullable=False, server_default="0"),
    Column("harsh_brakes", Integer, nullable=False, server_default="0"),
    Column("harsh_accels", Integer, nullable=False, server_default="0"),
    Column("fuel_used_pct", Float, nullable=True),
    Column("fuel_used_l", Float, nullable=True),
    Column("soc_used_pct", Float, nullable=True),
    Column("score", Float, nullable=True),
    Column("open", Boolean, nullable=False),
    Column("stats", JSON, nullable=True),
    Index("ix_trips_vehicle_start", "vehicle_id", "start_ms"),
)
"""One row per trip; `open` rows are trips in progress, their `stats` the accumulator to resume from."""
