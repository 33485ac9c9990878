"""Owner-facing geofence and alert-rule operations: validation lives here, not in routes.

A fence is validated by building the same `Fence` the detector will build, so anything the
API accepts is something ingest can evaluate. A fence may be bound to one of the owner's
cars (by VIN) or left unbound, meaning every car of the owner.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from chelian.errors import NotFoundError, ValidationError
from chelian.services.geofences.shapes import CIRCLE, POLYGON, circle, polygon
from chelian.storage.db import now_ms
from chelian.storage.repositories import alerts as alert_repo
from chelian.storage.repositories import geofences as repo
from chelian.storage.repositories import vehicles
from chelian.storage.repositories.alerts import Rules
from chelian.storage.repositories.geofences import GeofenceRow


def create(conn: Connection, owner_id: int, *, name: str, vin: str | None,
           circle_spec: dict[str, float] | None, geometry: dict[str, Any] | None) -> GeofenceRow:
    if (circle_spec is None) == (geometry is None):
        raise ValidationError("give exactly one of `circle` or `polygon`")
    vehicle_id = None
    if vin is not None:
        car = vehicles.accessible(conn, owner_id, vin.strip().upper())  # a fleet operator may fence a fleet car
        if car is None:
            raise NotFoundError(f"no vehicle {vin} in your account")
        vehicle_id = car.id
    values: dict[str, Any] = dict(owner_id=owner_id, vehicle_id=vehicle_id, name=name, created_ms=now_ms())
    if circle_spec is not None:
        fence = circle(0, owner_id=owner_id, vehicle_id=vehicle_id, name=name, lat=circle_spec["latitude"],
                       lon=circle_spec["longitude"], radius_m=circle_spec["radius_m"])
        values.update(kind=CIRCLE, center_lat=fence.lat, center_lon=fence.lon, radius_m=fence.radius_m)
    else:
        polygon(0, owner_id=owner_id, vehicle_id=vehicle_id, name=name, geometry=geometry or {})
        values.update(kind=POLYGON, geometry=geometry)
    fence_id = repo.create(conn, **values)
    row = repo.owned(conn, owner_id, fence_id)
    assert row is not None
    return row


def get(conn: Connection, owner_id: int, fence_id: int) -> GeofenceRow:
    row = repo.owned(conn, owner_id, fence_id)
    if row is None:
        raise NotFoundError(f"no geofence {fence_id} in your account")
    return row


def delete(conn: Connection, owner_id: int, fence_id: int) -> None:
    if not repo.delete_owned(conn, owner_id, fence_id):
        raise NotFoundError(f"no geofence {fence_id} in your account")


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def minutes(text: str, name: str) -> int:
    match = _HHMM.match(text)
    if match is None:
        raise ValidationError(f"{name} must be HH:MM (24 h), got {text!r}")
    return int(match[1]) * 60 + int(match[2])


def set_rules(conn: Connection, vehicle_id: int, *, speed_limit_kmh: float | None, curfew_start: str | None,
              curfew_end: str | None, timezone: str) -> Rules:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)"
                              ) from None
    if (curfew_start is None) != (curfew_end is None):
        raise ValidationError("give both curfew start and end, or neither")
    start = minutes(curfew_start, "curfew start") if curfew_start is not None else None
    end = minutes(curfew_end, "curfew end") if curfew_end is not None else None
    if start is not None and start == end:
        raise ValidationError("curfew start and end must differ")
    rules = Rules(speed_limit_kmh, start, end, timezone)
    alert_repo.put_rules(conn, vehicle_id, rules)
    return rules
