"""The fleets the caller operates, with their cars: read-only (`chelian fleet ...` manages them).

Why read-only: who runs which cars is the platform administrator's decision, not something
an operator could grant themselves; the cars are then used through the ordinary per-car
routes (`/vehicles/{vin}/...`), which let operators in via `OwnedVehicle`.
"""

from __future__ import annotations

from fastapi import APIRouter

from chelian.api.deps import API_PREFIX, CurrentUser, EngineDep
from chelian.api.schemas.fleets import FleetPublic, FleetsPublic
from chelian.errors import NotFoundError
from chelian.services.fleet.fleets import overview

router = APIRouter(prefix=f"{API_PREFIX}/fleets", tags=["fleets"])


@router.get("", response_model=FleetsPublic)
def list_fleets(user: CurrentUser, engine: EngineDep) -> FleetsPublic:
    """The fleets you operate (none for a plain owner), each with its cars and operators."""
    data = [FleetPublic.of(f) for f in overview(engine, operator_id=user.id)]
    return FleetsPublic(data=data, count=len(data))


@router.get("/{name}", response_model=FleetPublic,
            responses={404: {"description": "No such fleet, or you do not operate it"}})
def read_fleet(name: str, user: CurrentUser, engine: EngineDep) -> FleetPublic:
    found = next((f for f in overview(engine, operator_id=user.id) if f.fleet.name == name), None)
    if found is None:
        raise NotFoundError(f"no fleet {name} that you operate")
    return FleetPublic.of(found)
