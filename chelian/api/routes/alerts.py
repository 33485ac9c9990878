"""A car's alerts (geofences, speed, curfew, diagnostics, and colleagues' *_detected) and its rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chelian.api.deps import API_PREFIX, ConnDep, EngineDep, EventsWindow, OwnedVehicle
from chelian.api.schemas.rules import AlertPublic, AlertRulesBody, AlertsPublic
from chelian.services.geofences import service
from chelian.storage.repositories import alerts

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["alerts"])
_NOT_YOURS = {404: {"description": "Not one of your cars"}}


@router.get("/{vin}/alerts", response_model=AlertsPublic, responses=_NOT_YOURS)
def list_alerts(
    vehicle: OwnedVehicle, window: EventsWindow, conn: ConnDep,
    type: Annotated[list[str] | None, Query(description="Only these alert types (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertsPublic:
    """Newest first; default range: the last seven days."""
    found = alerts.for_vehicle(conn, vehicle.id, window.start_ms, window.end_ms, type, limit)
    return AlertsPublic(vin=vehicle.vin, data=[AlertPublic.of(a) for a in found], count=len(found))


@router.get("/{vin}/alert-rules", response_model=AlertRulesBody, responses=_NOT_YOURS)
def get_rules(vehicle: OwnedVehicle, conn: ConnDep) -> AlertRulesBody:
    return AlertRulesBody.of(alerts.rules_for(conn, vehicle.id))


@router.put("/{vin}/alert-rules", response_model=AlertRulesBody, responses={**_NOT_YOURS, 400: {}})
def put_rules(body: AlertRulesBody, vehicle: OwnedVehicle, engine: EngineDep) -> AlertRulesBody:
    """Speed limit (km/h) and curfew hours in the owner's time zone; null switches a rule off."""
    with engine.begin() as conn:
        rules = service.set_rules(conn, vehicle.id, speed_limit_kmh=body.speed_limit_kmh,
                                  curfew_start=body.curfew_start, curfew_end=body.curfew_end,
                                  timezone=body.timezone)
    return AlertRulesBody.of(rules)
