"""Roadside assistance tickets: request one, follow it, move it along."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from chelian.api.deps import API_PREFIX, ConnDep, CurrentUser, OwnedVehicle
from chelian.api.routes.safety_deps import SafetyDep
from chelian.api.schemas.safety import RoadsideAction, RoadsideCreate, TicketPublic, TicketsPublic
from chelian.errors import NotFoundError
from chelian.storage.repositories import roadside as repo

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["roadside"])

NOT_YOURS = {404: {"description": "Not one of your cars, or no such ticket"}}


@router.post(
    "/{vin}/roadside", status_code=status.HTTP_201_CREATED, response_model=TicketPublic, responses=NOT_YOURS
)
def request_help(
    vehicle: OwnedVehicle, body: RoadsideCreate, safety: SafetyDep, conn: ConnDep
) -> TicketPublic:
    """Position defaults to the car's last known one; the car's health snapshot is attached."""
    ticket = safety.roadside.request(
        vehicle.id, body.problem, "owner", latitude=body.latitude, longitude=body.longitude, note=body.note
    )
    return read_ticket(vehicle, ticket.id, conn)


@router.get("/{vin}/roadside", response_model=TicketsPublic, responses=NOT_YOURS)
def list_tickets(
    vehicle: OwnedVehicle, conn: ConnDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> TicketsPublic:
    return TicketsPublic(
        vin=vehicle.vin, data=[TicketPublic.of(t) for t in repo.for_vehicle(conn, vehicle.id, limit)]
    )


@router.get("/{vin}/roadside/{ticket_id}", response_model=TicketPublic, responses=NOT_YOURS)
def read_ticket(vehicle: OwnedVehicle, ticket_id: int, conn: ConnDep) -> TicketPublic:
    ticket = repo.get(conn, vehicle.id, ticket_id)
    if ticket is None:
        raise NotFoundError(f"no roadside ticket {ticket_id} for {vehicle.vin}")
    return TicketPublic.of(ticket, repo.updates(conn, ticket_id))


@router.post(
    "/{vin}/roadside/{ticket_id}/{action}",
    response_model=TicketPublic,
    responses={**NOT_YOURS, 409: {"description": "Not allowed from the ticket's current status"}},
)
def change_ticket(
    vehicle: OwnedVehicle,
    ticket_id: int,
    action: Literal["assign", "en_route", "resolve", "cancel"],
    user: CurrentUser,
    safety: SafetyDep,
    conn: ConnDep,
    body: RoadsideAction | None = None,
) -> TicketPublic:
    """open -> assigned (needs `assignee`; again to reassign) -> en_route -> resolved.

    `cancel` works until resolved."""
    body = body or RoadsideAction()
    safety.roadside.transition(vehicle.id, ticket_id, action, f"user:{user.id}", body.note, body.assignee)
    return read_ticket(vehicle, ticket_id, conn)
