"""Map data for the console's offline basemap: the roads the simulated cars drive on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from chelian.api.deps import API_PREFIX, CurrentUser
from chelian.web.roads import network_for, parse_bbox, roads_geojson

router = APIRouter(prefix=f"{API_PREFIX}/map", tags=["map"])


@router.get("/roads", responses={400: {"description": "Malformed bbox"}})
def read_roads(
    request: Request, _user: CurrentUser,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat; default: every road",
                                      examples=["-83.76,42.27,-83.72,42.29"])] = None,
) -> dict[str, Any]:
    """Road segments as a GeoJSON FeatureCollection of LineStrings (`properties.kind`: main|street)."""
    return roads_geojson(network_for(request.app.state), parse_bbox(bbox))
