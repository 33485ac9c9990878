"""Geofence enter/exit alerts with hysteresis, as an ingest CommitObserver.

GPS jitters by 5-30 m, so a car parked on a fence's border would flap in/out on a naive
point-in-polygon test. A car's side of a fence only changes when BOTH hold:

* the fix is beyond the border by more than `margin_m` (default 25 m) on the other side -
  fixes inside the +-margin band count for neither side and reset the streak;
* `confirm_fixes` (default 2) such fixes arrive in a row.

The confirmed side is kept per (car, fence) in memory and persisted on each transition
(`geofence_states`, only "inside" rows), so a restart neither re-alerts an entry nor forgets
an exit. A car's unknown side is "outside": a car first seen inside a new fence raises one
`geofence_entered`.

A car inside a fence that has left the fence's grown box is not a tree candidate any more;
it is then, by construction, beyond the margin outside, so it is stepped as "outside".
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import Engine

from chelian.events import DomainEvent, EventBus
from chelian.ingest.batch import WriteResult
from chelian.services.geofences.alerts import GEOFENCE_ENTERED, GEOFENCE_EXITED, AlertSink, CarDirectory
from chelian.services.geofences.index import FenceIndex
from chelian.services.geofences.shapes import Fence
from chelian.storage.repositories import geofences as repo

log = logging.getLogger("chelian.geofences")

LAT: Final = "Vehicle.CurrentLocation.Latitude"
LON: Final = "Vehicle.CurrentLocation.Longitude"
_VALUE_NUM: Final = 4  # SampleRow index


class GeofenceDetector:
    def __init__(self, engine: Engine, bus: EventBus | None, cars: CarDirectory | None = None, *,
                 margin_m: float = 25.0, confirm_fixes: int = 2, poll_s: float = 2.0) -> None:
        self.engine = engine
        self.cars = cars or CarDirectory(engine)
        self.sink = AlertSink(engine, bus)
        self.index = FenceIndex(engine, margin_m, poll_s)
        self.margin_m = margin_m
        self.confirm_fixes = confirm_fixes
        self._tracks: dict[int, dict[int, list]] = {}
        """vehicle_id -> fence_id -> [inside, streak]; only fences the car is inside or leaning to."""
        self._positions: dict[int, tuple[float | None, float | None, int]] = {}
        """vehicle_id -> (last lat, last lon, ts of the newest fix)."""
        self._transitions: list[tuple[int, int, int, bool]] = []
        self.load()

    def load(self) -> None:
        self.index.refresh(force=True)
        with self.engine.connect() as conn:
            for vehicle_id, fence_id in repo.inside_states(conn):
                self._tracks.setdefault(vehicle_id, {})[fence_id] = [True, 0]

    def inside(self, vehicle_id: int) -> set[int]:
        return {fid for fid, (ins, _) in self._tracks.get(vehicle_id, {}).items() if ins}

    def on_committed(self, result: WriteResult) -> None:
        fixes = self._fixes(result)
        if not fixes:
            return
        self.index.refresh()
        self.cars.prefetch(f[0] for f in fixes)
        per_fix = self.index.candidates([f[3] for f in fixes], [f[4] for f in fixes])
        for (vehicle_id, seq, ts_ms, lat, lon), near in zip(fixes, per_fix, strict=True):
            if near or vehicle_id in self._tracks:
                self._observe(vehicle_id, seq, ts_ms, lat, lon, near)
        if self._transitions:
            transitions, self._transitions = self._transitions, []
            with self.engine.begin() as conn:
                repo.save_transitions(conn, transitions)
        self.sink.flush()

    def _fixes(self, result: WriteResult) -> list[tuple[int, int, int, float, float]]:
        """(vehicle_id, seq, ts_ms, lat, lon) of every message that moved the car, oldest first;
        a message carrying only one coordinate is completed with the car's last other one. A
        message older than the car's newest fix (a late redelivery) is history, not a move."""
        fixes = []
        positions = self._positions
        for msg in sorted(result.new_telemetry, key=lambda m: m.ts_ms):
            lat_row, lon_row = msg.samples.get(LAT), msg.samples.get(LON)
            if lat_row is None and lon_row is None:
                continue
            last_lat, last_lon, last_ts = positions.get(msg.vehicle_id, (None, None, -1))
            if msg.ts_ms < last_ts:
                continue
            lat = lat_row[_VALUE_NUM] if lat_row is not None else last_lat
            lon = lon_row[_VALUE_NUM] if lon_row is not None else last_lon
            positions[msg.vehicle_id] = (lat, lon, msg.ts_ms)
            if lat is not None and lon is not None:
                fixes.append((msg.vehicle_id, msg.seq, msg.ts_ms, lat, lon))
        return fixes

    def _observe(self, vehicle_id: int, seq: int, ts_ms: int, lat: float, lon: float,
                 near: list[Fence]) -> None:
        tracks = self._tracks.setdefault(vehicle_id, {})
        owner = self.cars.owner(vehicle_id) if near else None
        seen: set[int] = set()
        margin = self.margin_m
        for fence in near:
            if not fence.applies_to(vehicle_id, owner):
                continue
            seen.add(fence.id)
            d = fence.signed_distance_m(lat, lon)
            side = True if d < -margin else False if d > margin else None
            self._step(vehicle_id, seq, ts_ms, lat, lon, fence, tracks, side)
        for fence_id in [f for f in tracks if f not in seen]:
            fence = self.index.by_id.get(fence_id)
            if fence is None:  # deleted: forget it without an alert
                del tracks[fence_id]
            else:
                self._step(vehicle_id, seq, ts_ms, lat, lon, fence, tracks, False)
        if not tracks:
            del self._tracks[vehicle_id]

    def _step(self, vehicle_id: int, seq: int, ts_ms: int, lat: float, lon: float, fence: Fence,
              tracks: dict[int, list], side: bool | None) -> None:
        track = tracks.get(fence.id)
        inside = track[0] if track else False
        if side is None or side == inside:  # in the band, or confirming the current side
            if track is not None:
                if inside:
                    track[1] = 0
                else:
                    del tracks[fence.id]
            return
        if track is None:
            track = tracks[fence.id] = [inside, 0]
        track[1] += 1
        if track[1] < self.confirm_fixes:
            return
        track[0], track[1] = side, 0
        if not side:
            del tracks[fence.id]
        self._transitions.append((vehicle_id, fence.id, ts_ms, side))
        name = GEOFENCE_ENTERED if side else GEOFENCE_EXITED
        vin = self.cars.vin(vehicle_id)
        data = {"geofence_id": fence.id, "name": fence.name, "latitude": lat, "longitude": lon}
        self.sink.add(DomainEvent(name, vin, vehicle_id, ts_ms, f"{vin}:{name}:{fence.id}:{seq}", data))
