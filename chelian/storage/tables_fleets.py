"""Tables of fleets: named groups of cars, and the operators who run them.

Kept apart from `tables.py` (same `metadata`, same naming convention) so fleets own their
schema; migration 0005 creates exactly these tables.

A fleet changes who may *use* a car, never who *owns* it: `vehicles.owner_id` stays the
legal owner (the one notified, the one whose owner-level geofences apply). The one rule
built on these tables, "cars you own plus cars in fleets you operate", lives in
`repositories/vehicles.py` (`access_clause`).
"""

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table

from chelian.storage.tables import metadata

fleets = Table(
    "fleets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
)
"""A fleet is known by its name (what `chelian fleet ...` takes), so names are unique."""

fleet_vehicles = Table(
    "fleet_vehicles",
    metadata,
    Column("vehicle_id", Integer, ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True),
    Column("fleet_id", Integer, ForeignKey("fleets.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("added_ms", BigInteger, nullable=False),
)
"""Membership: the vehicle id is the whole primary key, so a car is in at most one fleet."""

fleet_operators = Table(
    "fleet_operators",
    metadata,
    Column("fleet_id", Integer, ForeignKey("fleets.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("added_ms", BigInteger, nullable=False),
)
"""Who operates which fleet; indexed by user because every access check starts from the user."""
