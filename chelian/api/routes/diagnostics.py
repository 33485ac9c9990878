"""A car's trouble codes, health report and maintenance reminders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy import Connection

from chelian.api.deps import API_PREFIX, CatalogDep, ConnDep, CurrentUser, EngineDep, OwnedVehicle
from chelian.api.routes.commands import command_service
from chelian.api.schemas.commands import CommandPublic
from chelian.api.schemas.diagnostics import (
    DtcPublic,
    DtcsPublic,
    HealthPublic,
    PlanCreate,
    PlanDone,
    ReminderPublic,
)
from chelian.errors import NotFoundError, ValidationError
from chelian.services.diagnostics.clear import require_clear_supported
from chelian.services.diagnostics.health import checks, health_report, reminder_dict
from chelian.services.diagnostics.maintenance import ODOMETER, remaining
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.repositories import dtcs
from chelian.storage.repositories.telemetry import latest_state

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["diagnostics"])
_NOT_YOURS = {404: {"description": "Not one of your cars"}}


@router.get("/{vin}/dtcs", response_model=DtcsPublic, responses=_NOT_YOURS)
def list_dtcs(vehicle: OwnedVehicle, conn: ConnDep,
              open: Annotated[bool, Query(description="Only active and pending codes")] = False,
              ) -> DtcsPublic:
    rows = dtcs.for_vehicle(conn, vehicle.id, open_only=open)
    return DtcsPublic(vin=vehicle.vin, data=[DtcPublic.of(r) for r in rows], count=len(rows))


@router.post("/{vin}/dtcs/clear", status_code=202, response_model=CommandPublic, responses=_NOT_YOURS)
def clear_dtcs(vehicle: OwnedVehicle, user: CurrentUser, request: Request,
               idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> CommandPublic:
    """Clear the car's trouble codes: a signed `clear_dtcs` command the car verifies like any
    other; follow it at `.../commands/{id}`. The codes close here when the car stops
    reporting them."""
    command_type = require_clear_supported()
    row, _created = command_service(request).create(vehicle, user.id, command_type, {}, None, idempotency_key)
    return CommandPublic.of(vehicle.vin, row)


@router.get("/{vin}/health", response_model=HealthPublic, responses=_NOT_YOURS)
def health(vehicle: OwnedVehicle, conn: ConnDep, catalog: CatalogDep, request: Request) -> HealthPublic:
    s = request.app.state.settings
    table = checks(s.health_low_tyre_kpa, s.health_low_battery_v)
    return HealthPublic(vin=vehicle.vin, **health_report(conn, catalog, vehicle.id, now_ms(), table))


def _odometer_km(conn: Connection, catalog: Catalog, vehicle_id: int) -> float | None:
    entry = latest_state(conn, catalog, vehicle_id, [ODOMETER]).get(ODOMETER)
    return None if entry is None or entry.value is None else float(entry.value) / 1000  # type: ignore[arg-type]


@router.get("/{vin}/maintenance", response_model=list[ReminderPublic], responses=_NOT_YOURS)
def list_maintenance(vehicle: OwnedVehicle, conn: ConnDep, catalog: CatalogDep) -> list[ReminderPublic]:
    km = _odometer_km(conn, catalog, vehicle.id)
    now = now_ms()
    return [ReminderPublic(**reminder_dict(remaining(p, None if km is None else km * 1000, now)))
            for p in dtcs.plans(conn, vehicle.id)]


@router.post("/{vin}/maintenance", response_model=ReminderPublic, status_code=201,
             responses={**_NOT_YOURS, 400: {}})
def add_maintenance(body: PlanCreate, vehicle: OwnedVehicle, engine: EngineDep,
                    catalog: CatalogDep) -> ReminderPublic:
    if body.every_km is None and body.every_days is None:
        raise ValidationError("give every_km, every_days or both")
    now = now_ms()
    with engine.begin() as conn:
        km = _odometer_km(conn, catalog, vehicle.id)
        done_km = body.last_done_km if body.last_done_km is not None else km
        plan_id = dtcs.add_plan(conn, vehicle_id=vehicle.id, name=body.name, every_km=body.every_km,
                                every_days=body.every_days, last_done_km=done_km,
                                last_done_ms=body.last_done_ms if body.last_done_ms is not None else now)
        plan = next(p for p in dtcs.plans(conn, vehicle.id) if p.id == plan_id)
    return ReminderPublic(**reminder_dict(remaining(plan, None if km is None else km * 1000, now)))


@router.post("/{vin}/maintenance/{plan_id}/done", response_model=ReminderPublic, responses=_NOT_YOURS)
def maintenance_done(plan_id: int, body: PlanDone, vehicle: OwnedVehicle, engine: EngineDep,
                     catalog: CatalogDep) -> ReminderPublic:
    now = now_ms()
    with engine.begin() as conn:
        km = _odometer_km(conn, catalog, vehicle.id)
        if not dtcs.mark_done(conn, vehicle.id, plan_id, body.done_km if body.done_km is not None else km,
                              body.done_ms if body.done_ms is not None else now):
            raise NotFoundError(f"no maintenance plan {plan_id} for {vehicle.vin}")
        plan = next(p for p in dtcs.plans(conn, vehicle.id) if p.id == plan_id)
    return ReminderPublic(**reminder_dict(remaining(plan, None if km is None else km * 1000, now)))
