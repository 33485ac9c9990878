"""Trip detection as an ingest CommitObserver: ignition and motion make a trip.

A trip starts at the first message with the ignition ON/START (`Vehicle.LowVoltageSystemState`)
and the car moving faster than `moving_kmh`; a car that never reports its ignition starts a
trip on motion alone. Its start time is when the ignition came on, if that was seen, so the
warm-up belongs to the trip. It ends:

* when the ignition goes OFF/LOCK (end = that message), or
* after `idle_end_s` without motion (end = the last moving message), or
* when the car is silent for more than `gap_s` (end = its last message before the gap).

What it measured (distance by odometer delta, else haversine over fixes; fuel and state of
charge used; max speed; harsh braking/acceleration; score: see `score.py`) is accumulated in
memory and checkpointed into the open trip's row every `checkpoint_s` of trip time, so a
restart resumes the trip instead of splitting or losing it. Events: `trip_started`,
`trip_ended`.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Engine

from chelian.events import DomainEvent, EventBus
from chelian.ingest.batch import TelemetryRows, WriteResult
from chelian.services.geofences.alerts import TRIP_ENDED, TRIP_STARTED, AlertSink, CarDirectory
from chelian.services.geofences.shapes import haversine_m
from chelian.services.trips.score import HARSH_ACCEL_MS2, HARSH_BRAKE_MS2, REARM_MS2, Trip
from chelian.storage.repositories import trips as repo

IGNITION: Final = "Vehicle.LowVoltageSystemState"
IGNITION_ON: Final = frozenset({"ON", "START"})
IGNITION_OFF: Final = frozenset({"OFF", "LOCK"})
SPEED: Final = "Vehicle.Speed"
ACCEL: Final = "Vehicle.Acceleration.Longitudinal"
LAT: Final = "Vehicle.CurrentLocation.Latitude"
LON: Final = "Vehicle.CurrentLocation.Longitude"
ODOMETER: Final = "Vehicle.TraveledDistance"
# signal -> (first attribute, last attribute) of the Trip accumulator
LEVELS: Final = {
    "Vehicle.Powertrain.FuelSystem.RelativeLevel": ("fuel_pct_first", "fuel_pct_last"),
    "Vehicle.Powertrain.FuelSystem.AbsoluteLevel": ("fuel_l_first", "fuel_l_last"),
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": ("soc_first", "soc_last"),
    ODOMETER: ("odo_first", "odo_last"),
}
_NUM, _TEXT = 4, 5
MAX_DERIVATIVE_GAP_MS: Final = 5000


class TripDetector:
    def __init__(self, engine: Engine, bus: EventBus | None, cars: CarDirectory | None = None, *,
                 moving_kmh: float = 5.0, idle_end_s: float = 600, gap_s: float = 1800,
                 checkpoint_s: float = 60, harsh_braking_ms2: float = -HARSH_BRAKE_MS2,
                 harsh_acceleration_ms2: float = HARSH_ACCEL_MS2, harsh_rearm_ms2: float = REARM_MS2) -> None:
        self.engine = engine
        self.harsh_brake_ms2 = -abs(harsh_braking_ms2)
        self.harsh_accel_ms2 = harsh_acceleration_ms2
        self.rearm_ms2 = harsh_rearm_ms2
        self.cars = cars or CarDirectory(engine)
        self.sink = AlertSink(engine, bus)
        self.moving_kmh = moving_kmh
        self.idle_end_ms = int(idle_end_s * 1000)
        self.gap_ms = int(gap_s * 1000)
        self.checkpoint_ms = int(checkpoint_s * 1000)
        self._open: dict[int, Trip] = {}
        self._ignition: dict[int, tuple[str, int]] = {}
        """vehicle_id -> (state, since ts_ms)."""
        self._last_ms: dict[int, int] = {}
        self._ops: list[tuple[str, int, int, Trip]] = []
        with engine.connect() as conn:
            for vehicle_id, trip_id, stats in repo.open_trips(conn):
                if stats:
                    trip = Trip.from_stats(stats)
                    trip.trip_id = trip_id
                    self._open[vehicle_id] = trip

    def open_trip(self, vehicle_id: int) -> Trip | None:
        return self._open.get(vehicle_id)

    def on_committed(self, result: WriteResult) -> None:
        for msg in sorted(result.new_telemetry, key=lambda m: m.ts_ms):
            self._message(msg)
        if self._ops:
            self._flush()

    def _message(self, msg: TelemetryRows) -> None:
        vid, ts, s = msg.vehicle_id, msg.ts_ms, msg.samples
        last = self._last_ms.get(vid)
        if last is not None and ts < last:  # a late redelivery: the trip has moved on
            return
        self._last_ms[vid] = ts
        trip = self._open.get(vid)
        if trip is not None and ts - trip.last_ms > self.gap_ms:
            self._end(vid, msg.seq, trip)
            trip = None
        ign_row = s.get(IGNITION)
        if ign_row is not None and ign_row[_TEXT] is not None:
            previous = self._ignition.get(vid)
            if previous is None or previous[0] != ign_row[_TEXT]:
                self._ignition[vid] = (ign_row[_TEXT], ts)
        ignition = self._ignition.get(vid)
        speed_row = s.get(SPEED)
        speed = speed_row[_NUM] if speed_row is not None else None
        moving = speed is not None and speed > self.moving_kmh
        if trip is None:
            if moving and (ignition is None or ignition[0] in IGNITION_ON):
                start = ignition[1] if ignition is not None and ts - ignition[1] <= self.gap_ms else ts
                trip = self._open[vid] = Trip(start_ms=start, last_ms=ts, checkpoint_ms=ts)
                self._accumulate(trip, ts, s, speed)
                self._ops.append(("start", vid, msg.seq, trip))
            return
        self._accumulate(trip, ts, s, speed)
        if moving:
            trip.last_moving_ms = ts
        ended_by_key = ignition is not None and ignition[0] in IGNITION_OFF and ignition[1] <= ts
        idle = ts - (trip.last_moving_ms or trip.start_ms) > self.idle_end_ms
        if ended_by_key or idle:
            if ended_by_key:
                trip.last_moving_ms = ts
            self._end(vid, msg.seq, trip)
        elif ts - trip.checkpoint_ms >= self.checkpoint_ms:
            trip.checkpoint_ms = ts
            self._ops.append(("checkpoint", vid, msg.seq, trip))

    def _accumulate(self, trip: Trip, ts: int, s: dict, speed: float | None) -> None:
        trip.last_ms = max(trip.last_ms, ts)
        lat_row, lon_row = s.get(LAT), s.get(LON)
        if lat_row is not None and lon_row is not None:
            lat, lon = lat_row[_NUM], lon_row[_NUM]
            if trip.last_lat is not None:
                trip.gps_m += haversine_m(trip.last_lat, trip.last_lon, lat, lon)  # type: ignore[arg-type]
            else:
                trip.start_lat, trip.start_lon = lat, lon
            trip.last_lat, trip.last_lon = lat, lon
        for path, (first, last) in LEVELS.items():
            row = s.get(path)
            if row is not None and row[_NUM] is not None:
                if getattr(trip, first) is None:
                    setattr(trip, first, row[_NUM])
                setattr(trip, last, row[_NUM])
        if speed is not None:
            trip.max_speed = max(trip.max_speed, speed)
            if speed > self.moving_kmh:
                trip.last_moving_ms = ts
        accel_row = s.get(ACCEL)
        accel = accel_row[_NUM] if accel_row is not None else None
        if accel is not None:
            trip.saw_accel = True
        elif (not trip.saw_accel and speed is not None and trip.last_speed is not None
              and trip.last_speed_ms is not None and 0 < ts - trip.last_speed_ms <= MAX_DERIVATIVE_GAP_MS):
            accel = (speed - trip.last_speed) / 3.6 / ((ts - trip.last_speed_ms) / 1000)
        if speed is not None:
            trip.last_speed, trip.last_speed_ms = speed, ts
        if accel is None:
            return
        if trip.in_harsh:
            trip.in_harsh = abs(accel) >= self.rearm_ms2
        elif accel <= self.harsh_brake_ms2:
            trip.harsh_brakes, trip.in_harsh = trip.harsh_brakes + 1, True
        elif accel >= self.harsh_accel_ms2:
            trip.harsh_accels, trip.in_harsh = trip.harsh_accels + 1, True

    def _end(self, vehicle_id: int, seq: int, trip: Trip) -> None:
        del self._open[vehicle_id]
        self._ops.append(("end", vehicle_id, seq, trip))

    def _flush(self) -> None:
        ops, self._ops = self._ops, []
        self.cars.prefetch(op[1] for op in ops)
        with self.engine.begin() as conn:
            new = [(vid, trip) for kind, vid, _, trip in ops if kind == "start" and trip.trip_id is None]
            if new:
                ids = repo.start_many(conn, [(vid, t.start_ms, t.to_stats()) for vid, t in new])
                for (_, trip), trip_id in zip(new, ids, strict=True):
                    trip.trip_id = trip_id
            ended = []
            for kind, vehicle_id, _, trip in ops:
                if trip.trip_id is None:  # a resumed trip whose row was lost: start it again
                    trip.trip_id = repo.start(conn, vehicle_id, trip.start_ms, trip.to_stats())
                if kind == "checkpoint" and self._open.get(vehicle_id) is trip:
                    repo.checkpoint(conn, trip.trip_id, trip.to_stats())
                elif kind == "end":
                    ended.append((trip.trip_id, trip.summary()))
            repo.finish_many(conn, ended)
        for kind, vehicle_id, _seq, trip in ops:
            if kind == "checkpoint":
                continue
            vin = self.cars.vin(vehicle_id)
            name = TRIP_STARTED if kind == "start" else TRIP_ENDED
            data: dict[str, Any] = {"trip_id": trip.trip_id}
            if kind == "start":
                data.update(start_ms=trip.start_ms, latitude=trip.start_lat, longitude=trip.start_lon)
                ts = trip.start_ms
            else:
                summary = trip.summary()
                data.update(summary, duration_s=(summary["end_ms"] - trip.start_ms) / 1000)
                ts = summary["end_ms"]
            self.sink.add(DomainEvent(name, vin, vehicle_id, ts, f"{vin}:{name}:{trip.trip_id}", data))
        self.sink.flush()
