"""A car's events, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chelian.api.deps import API_PREFIX, ConnDep, EventsWindow, OwnedVehicle
from chelian.api.schemas.events import EventPublic, EventsPublic
from chelian.storage.repositories import events

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["events"])

DEFAULT_EVENTS, MAX_EVENTS = 100, 1000


@router.get("/{vin}/events", response_model=EventsPublic,
            responses={404: {"description": "Not one of your cars"}})
def list_events(
    vehicle: OwnedVehicle, window: EventsWindow, conn: ConnDep,
    type: Annotated[str | None, Query(max_length=64, description="Only events of this type")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = DEFAULT_EVENTS,
) -> EventsPublic:
    """Default range: the last seven days."""
    found, truncated = events.for_vehicle(conn, vehicle.id, window.start_ms, window.end_ms, type=type,
                                          limit=limit)
    return EventsPublic(vin=vehicle.vin, data=[EventPublic.of(e) for e in found], count=len(found),
                        truncated=truncated)
