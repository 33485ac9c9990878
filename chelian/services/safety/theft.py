"""Stolen-vehicle assistance and the unauthorised-movement alarm.

Stolen: the owner reports the car stolen; the car is told (signed `set_tracking`) to report
its position every `tracking_interval_ms` for `tracking_duration_s` (a recovery sends the
stop), and from then on every position the car stores is kept in the report's track, and
each move (faster than `speed_kmh`, or more than `radius_m` from the last announced
position) is announced (`stolen_vehicle_moved`); the owner may ask for a
remote immobilise (a signed `immobilise` command through chelian.services.commands, which
the car carries out once stationary), and a recovery report closes it with notes.

The unauthorised-movement alarm (a parked car that moves) is `movement.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Engine

from chelian.errors import ChelianError, ConflictError, NotFoundError
from chelian.ingest.batch import TelemetryRows, WriteResult
from chelian.services.commands.catalog import TRACKING_MAX_DURATION_S
from chelian.services.commands.lifecycle import service_origin
from chelian.services.safety import names as n
from chelian.services.safety.announce import Announcer
from chelian.services.safety.geo import distance_m, num
from chelian.storage.db import now_ms
from chelian.storage.repositories import commands as commands_repo
from chelian.storage.repositories import theft as repo
from chelian.storage.repositories import vehicles as vehicles_repo
from chelian.storage.repositories.theft import RECOVERED, TheftReport, TrackPoint
from chelian.storage.repositories.vehicles import Vehicle

log = logging.getLogger("chelian.safety.theft")

TRACKING_ORIGIN = service_origin("theft")
"""High-rate tracking is started and renewed by this service, not by the person who reported
the theft: the audit trail says so (their explicit immobilise stays theirs)."""
TRACKING_INTERVAL_MS = 1_000
TRACKING_DURATION_S = 6 * 3600
"""How long a stolen car reports at high rate unless recovered first (Settings override both)."""
RENEWAL_CHECK_MS = 60_000


class CommandCreator(Protocol):
    """The part of chelian.services.commands.lifecycle.CommandService used here."""

    def create(
        self,
        vehicle: Vehicle,
        user_id: int,
        type_: str,
        args: dict[str, Any],
        expires_in_s: int | None = None,
        idempotency_key: str | None = None,
        *,
        origin: str = ...,
    ) -> tuple[Any, bool]: ...


class TheftService:
    def __init__(
        self,
        engine: Engine,
        announcer: Announcer,
        commands: Callable[[], CommandCreator | None],
        clock: Callable[[], int] = now_ms,
        *,
        tracking_interval_ms: int = TRACKING_INTERVAL_MS,
        tracking_duration_s: int = TRACKING_DURATION_S,
    ) -> None:
        self.engine = engine
        self.announcer = announcer
        self.commands = commands
        """Returns the command service when the platform runs one (None: record the request only)."""
        self.clock = clock
        self.tracking_interval_ms = tracking_interval_ms
        self.tracking_duration_s = tracking_duration_s
        self._renewed: dict[int, int] = {}
        """report id -> the last half-duration period this process renewed tracking for."""

    def report(self, vehicle: Vehicle, user_id: int, note: str | None) -> TheftReport:
        """Open a report and tell the car to report its position at high rate."""
        now = self.clock()
        with self.engine.begin() as conn:
            if repo.active(conn, vehicle.id) is not None:
                raise ConflictError(f"{vehicle.vin} is already reported stolen")
            report = repo.create(conn, vehicle.id, user_id, note, now)
        args = {"interval_ms": self.tracking_interval_ms, "duration_s": self.tracking_duration_s}
        command_id = self._command(vehicle, report, "track", args)
        self.announcer.publish(
            n.VEHICLE_REPORTED_STOLEN,
            vehicle.id,
            now,
            f"stolen:{report.id}:reported",
            {"report_id": report.id, "note": note, "tracking_command_id": command_id},
        )
        return report

    def _command(self, vehicle: Vehicle, report: TheftReport, purpose: str,
                 args: dict[str, Any]) -> str | None:
        """Send `set_tracking` for the report (idempotent per report and purpose); its id, or None.

        A command that cannot be sent (no command service here, a car without a platform key)
        is logged and does not undo the report: the track still records what the car sends.
        It may wait for an offline car as long as tracking would last (the car counts the
        duration from when it gets the command).
        """
        commands = self.commands()
        if commands is None:
            log.warning("tracking_not_sent vin=%s report=%d: no command service in this process",
                        vehicle.vin, report.id)
            return None
        try:
            command, _created = commands.create(
                vehicle, report.reported_by or 0, "set_tracking", args,
                expires_in_s=min(self.tracking_duration_s, TRACKING_MAX_DURATION_S),
                idempotency_key=f"theft:{report.id}:{purpose}", origin=TRACKING_ORIGIN,
            )
        except ChelianError as exc:
            log.warning("tracking_not_sent vin=%s report=%d: %s", vehicle.vin, report.id, exc)
            return None
        return str(command.id)

    def keep_tracking(self, vehicle_id: int) -> str | None:
        """Renew high-rate tracking of a car still reported stolen, once per half duration.

        Called as the stolen car's positions arrive, so the car never reaches the end of its
        tracking while the report is open; once the report is closed nothing renews it, and a
        lost stop costs at most one duration. Each half-duration period has its own
        idempotency key, so several ingest workers calling at once send one command.
        """
        if self.commands() is None:
            return None  # an ingest worker without a command relay: the platform's own renews
        with self.engine.connect() as conn:
            report = repo.active(conn, vehicle_id)
            vehicle = vehicles_repo.by_vin(conn, self.announcer.vin(vehicle_id)) if report else None
        if report is None or vehicle is None:
            return None
        period = (self.clock() - report.reported_ms) // (self.tracking_duration_s * 500)
        if period < 1 or self._renewed.get(report.id, 0) >= period:
            return None  # the last command still has more than half its duration to run
        args = {"interval_ms": self.tracking_interval_ms, "duration_s": self.tracking_duration_s}
        command_id = self._command(vehicle, report, f"track:{period}", args)
        if command_id is not None:
            self._renewed[report.id] = period
        return command_id

    def tracking_commands(self, report: TheftReport) -> tuple[str | None, str | None]:
        """Ids of the `set_tracking` commands the report sent: (start, stop); None where none was."""
        with self.engine.connect() as conn:
            found = [commands_repo.by_idempotency_key(conn, report.reported_by or 0, f"theft:{report.id}:{p}")
                     for p in ("track", "untrack")]
        start, stop = (None if c is None else c.id for c in found)
        return start, stop

    def current(self, vehicle: Vehicle) -> tuple[TheftReport, list[TrackPoint]]:
        with self.engine.connect() as conn:
            report = repo.latest(conn, vehicle.id)
            if report is None:
                raise NotFoundError(f"{vehicle.vin} has never been reported stolen")
            return report, repo.track(conn, report.id)

    def immobilise(self, vehicle: Vehicle, user_id: int) -> TheftReport:
        """Ask the car to immobilise; idempotent per report (asking twice sends one command)."""
        report = self._active(vehicle)
        commands, command_id = self.commands(), None
        if commands is not None:
            command, _created = commands.create(
                vehicle, user_id, "immobilise", {}, idempotency_key=f"theft:{report.id}:immobilise"
            )
            command_id = command.id
        else:
            log.warning(
                "immobilise_not_sent vin=%s report=%d: no command service in this process",
                vehicle.vin,
                report.id,
            )
        now = self.clock()
        with self.engine.begin() as conn:
            repo.set_values(
                conn,
                report.id,
                immobilise_requested_ms=report.immobilise_requested_ms or now,
                immobilise_command_id=command_id or report.immobilise_command_id,
            )
        self.announcer.publish(
            n.IMMOBILISE_REQUESTED,
            vehicle.id,
            now,
            f"stolen:{report.id}:immobilise",
            {"report_id": report.id, "command_id": command_id},
        )
        return self._latest(vehicle)

    def recover(self, vehicle: Vehicle, note: str | None) -> TheftReport:
        """Close the report and return the car to its normal reporting rate."""
        report, now = self._active(vehicle), self.clock()
        with self.engine.begin() as conn:
            repo.set_values(conn, report.id, status=RECOVERED, recovered_ms=now, recovery_note=note)
        command_id = self._command(vehicle, report, "untrack", {"interval_ms": self.tracking_interval_ms,
                                                                "duration_s": 0})
        self.announcer.publish(
            n.VEHICLE_RECOVERED,
            vehicle.id,
            now,
            f"stolen:{report.id}:recovered",
            {"report_id": report.id, "note": note, "tracking_command_id": command_id},
        )
        return self._latest(vehicle)

    def _active(self, vehicle: Vehicle) -> TheftReport:
        with self.engine.connect() as conn:
            report = repo.active(conn, vehicle.id)
        if report is None:
            raise NotFoundError(f"{vehicle.vin} is not reported stolen")
        return report

    def _latest(self, vehicle: Vehicle) -> TheftReport:
        with self.engine.connect() as conn:
            report = repo.latest(conn, vehicle.id)
        assert report is not None
        return report


class TheftObserver:
    """Ingest commit observer: keeps stolen cars' tracks, announces their moves, and keeps
    their high-rate tracking going (the unauthorised-movement alarm is `movement.py`'s)."""

    def __init__(self, engine: Engine, announcer: Announcer, *, moving_kmh: float = 5.0,
                 radius_m: float = 50.0, theft: TheftService | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.engine = engine
        self.announcer = announcer
        self.moving_kmh = moving_kmh
        self.radius_m = radius_m
        """A stolen car's move is announced beyond this distance from the last announced one
        (or above `moving_kmh`)."""
        self.theft = theft
        """Renews a stolen car's high-rate tracking while its positions keep coming (None: never)."""
        self.clock = clock
        self._renewal_checked: dict[int, int] = {}
        """vehicle id -> when `keep_tracking` last ran for it (at most once a minute per car)."""
        self._announced: dict[int, tuple[float, float]] = {}
        """report id -> last position announced, so a stolen car standing still is not re-announced."""

    def on_committed(self, result: WriteResult) -> None:
        rows = sorted(result.new_telemetry, key=lambda m: (m.vehicle_id, m.ts_ms, m.seq))
        self._track([r for r in rows if n.LATITUDE in r.samples and n.LONGITUDE in r.samples])

    def _track(self, positioned: list[TelemetryRows]) -> None:
        if not positioned:
            return
        with self.engine.begin() as conn:
            stolen = repo.active_by_vehicle(conn, sorted({r.vehicle_id for r in positioned}))
            if not stolen:
                return
            fresh: list[tuple[int, TrackPoint]] = []
            for r in (r for r in positioned if r.vehicle_id in stolen):
                point = TrackPoint(r.seq, r.ts_ms, num(r, n.LATITUDE), num(r, n.LONGITUDE), num(r, n.SPEED))
                if repo.add_points(conn, stolen[r.vehicle_id], [point]):
                    fresh.append((r.vehicle_id, point))
        self._keep_tracking({vehicle_id for vehicle_id, _p in fresh})
        for vehicle_id, p in fresh:
            last = self._announced.get(stolen[vehicle_id])
            still = last is not None and distance_m(*last, p.latitude, p.longitude) <= self.radius_m
            if still and (p.speed_kmh or 0.0) <= self.moving_kmh:
                continue
            self._announced[stolen[vehicle_id]] = (p.latitude, p.longitude)
            vin = self.announcer.vin(vehicle_id)
            self.announcer.publish(
                n.STOLEN_VEHICLE_MOVED,
                vehicle_id,
                p.ts_ms,
                f"stolen:{vin}:{p.seq}",
                {
                    "report_id": stolen[vehicle_id],
                    "latitude": p.latitude,
                    "longitude": p.longitude,
                    "speed_kmh": p.speed_kmh,
                },
            )

    def _keep_tracking(self, vehicle_ids: set[int]) -> None:
        if self.theft is None:
            return
        now = self.clock()
        for vehicle_id in sorted(vehicle_ids):
            if now - self._renewal_checked.get(vehicle_id, -RENEWAL_CHECK_MS) >= RENEWAL_CHECK_MS:
                self._renewal_checked[vehicle_id] = now
                self.theft.keep_tracking(vehicle_id)
