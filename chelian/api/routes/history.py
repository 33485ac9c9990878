"""One signal's history: raw samples, or downsampled in the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chelian.api.deps import API_PREFIX, ConnDep, EveryParam, HistoryWindow, KnownSignal, OwnedVehicle
from chelian.api.schemas.history import DownsampledHistoryPublic, HistoryPublic, history_base
from chelian.storage.repositories import telemetry

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["history"])

DEFAULT_POINTS, MAX_POINTS = 1000, 10_000


@router.get("/{vin}/signals/{path}/history", response_model=HistoryPublic | DownsampledHistoryPublic,
            responses={400: {"description": "Bad time range or `every`, or `every` on a text signal"},
                       404: {"description": "Not one of your cars, or unknown signal"}})
def signal_history(
    vehicle: OwnedVehicle, signal: KnownSignal, window: HistoryWindow, every: EveryParam, conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS, description="Most raw points")] = DEFAULT_POINTS,
) -> HistoryPublic | DownsampledHistoryPublic:
    """Default range: the last hour. With `every`: avg/min/max/count per bucket (numeric and boolean
    signals; a boolean's avg is the share of samples that were true). Without: raw points, oldest first."""
    base = history_base(vehicle.vin, signal.path, signal.unit, window.start_ms, window.end_ms)
    if every is None:
        samples, truncated = telemetry.history(conn, signal, vehicle.id, window.start_ms, window.end_ms,
                                               limit)
        return HistoryPublic.of(base, samples, truncated)
    buckets = telemetry.downsample(conn, signal, vehicle.id, window.start_ms, window.end_ms, every.ms)
    return DownsampledHistoryPublic.of(base, every.text, buckets)
