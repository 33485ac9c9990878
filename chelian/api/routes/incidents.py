"""A car's crash incidents and their lifecycle: acknowledge, dispatch, close, cancel, notes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from chelian.api.deps import API_PREFIX, ConnDep, CurrentUser, OwnedVehicle
from chelian.api.routes.safety_deps import SafetyDep
from chelian.api.schemas.safety import IncidentPublic, IncidentsPublic, NoteIn, NoteRequired
from chelian.errors import NotFoundError
from chelian.storage.repositories import incidents as repo

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["incidents"])

NOT_YOURS = {404: {"description": "Not one of your cars, or no such incident"}}


@router.get("/{vin}/incidents", response_model=IncidentsPublic, responses=NOT_YOURS)
def list_incidents(
    vehicle: OwnedVehicle,
    conn: ConnDep,
    status: Annotated[
        Literal["open", "acknowledged", "dispatched", "closed", "cancelled"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IncidentsPublic:
    """Newest first."""
    found = repo.for_vehicle(conn, vehicle.id, limit, status=status)
    return IncidentsPublic(vin=vehicle.vin, data=[IncidentPublic.of(i) for i in found])


@router.get("/{vin}/incidents/{incident_id}", response_model=IncidentPublic, responses=NOT_YOURS)
def read_incident(vehicle: OwnedVehicle, incident_id: int, conn: ConnDep) -> IncidentPublic:
    incident = repo.get(conn, vehicle.id, incident_id)
    if incident is None:
        raise NotFoundError(f"no incident {incident_id} for {vehicle.vin}")
    return IncidentPublic.of(incident, repo.updates(conn, incident_id))


@router.post("/{vin}/incidents/{incident_id}/notes", response_model=IncidentPublic, responses=NOT_YOURS)
def add_note(
    vehicle: OwnedVehicle,
    incident_id: int,
    body: NoteRequired,
    user: CurrentUser,
    safety: SafetyDep,
    conn: ConnDep,
) -> IncidentPublic:
    safety.incidents.add_note(vehicle.id, incident_id, f"user:{user.id}", body.note)
    return read_incident(vehicle, incident_id, conn)


@router.post(
    "/{vin}/incidents/{incident_id}/{action}",
    response_model=IncidentPublic,
    responses={
        **NOT_YOURS,
        409: {
            "description": "Not allowed from the incident's current status, or the "
            "grace period for cancelling is over"
        },
    },
)
def change_incident(
    vehicle: OwnedVehicle,
    incident_id: int,
    action: Literal["acknowledge", "dispatch", "close", "cancel"],
    user: CurrentUser,
    safety: SafetyDep,
    conn: ConnDep,
    body: NoteIn | None = None,
) -> IncidentPublic:
    """open -> acknowledged -> dispatched -> closed; `cancel` (a false alarm) only while open and
    within the grace period, which also withdraws the notifications not yet sent."""
    safety.incidents.transition(
        vehicle.id, incident_id, action, f"user:{user.id}", body.note if body else None
    )
    return read_incident(vehicle, incident_id, conn)
