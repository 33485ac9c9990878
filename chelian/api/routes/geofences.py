"""The owner's geofences: circles and GeoJSON polygons, for one car or all of them."""

from __future__ import annotations

from fastapi import APIRouter, Response

from chelian.api.deps import API_PREFIX, CurrentUser, EngineDep
from chelian.api.schemas.rules import GeofenceCreate, GeofencePublic, GeofencesPublic
from chelian.services.geofences import service
from chelian.storage.repositories import geofences, vehicles

router = APIRouter(prefix=f"{API_PREFIX}/geofences", tags=["geofences"])
_NOT_YOURS = {404: {"description": "Not one of your geofences (or cars)"}}


def _vins(engine, owner_id: int) -> dict[int, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {car.id: car.vin for car in vehicles.visible_to(conn, owner_id)}


@router.get("", response_model=GeofencesPublic)
def list_geofences(user: CurrentUser, engine: EngineDep) -> GeofencesPublic:
    with engine.connect() as conn:
        rows = geofences.for_owner(conn, user.id)
    vins = _vins(engine, user.id)
    data = [GeofencePublic.of(r, vins.get(r.vehicle_id) if r.vehicle_id else None) for r in rows]
    return GeofencesPublic(data=data, count=len(data))


@router.post("", response_model=GeofencePublic, status_code=201, responses={**_NOT_YOURS, 400: {}})
def create_geofence(body: GeofenceCreate, user: CurrentUser, engine: EngineDep) -> GeofencePublic:
    with engine.begin() as conn:
        circle_spec = body.circle.model_dump() if body.circle else None
        row = service.create(conn, user.id, name=body.name, vin=body.vin, circle_spec=circle_spec,
                             geometry=body.polygon)
    return GeofencePublic.of(row, body.vin.strip().upper() if body.vin else None)


@router.get("/{fence_id}", response_model=GeofencePublic, responses=_NOT_YOURS)
def get_geofence(fence_id: int, user: CurrentUser, engine: EngineDep) -> GeofencePublic:
    with engine.connect() as conn:
        row = service.get(conn, user.id, fence_id)
    return GeofencePublic.of(row, _vins(engine, user.id).get(row.vehicle_id) if row.vehicle_id else None)


@router.delete("/{fence_id}", status_code=204, responses=_NOT_YOURS)
def delete_geofence(fence_id: int, user: CurrentUser, engine: EngineDep) -> Response:
    with engine.begin() as conn:
        service.delete(conn, user.id, fence_id)
    return Response(status_code=204)
