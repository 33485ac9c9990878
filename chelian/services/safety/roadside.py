"""Roadside assistance: a ticket from the car's `roadside_requested` event or the owner's API
call, with the car's last health snapshot attached so the helper knows what to bring.

    open --assign--> assigned --en_route--> en_route --resolve--> resolved
    (open | assigned | en_route) --cancel--> cancelled;  assign again = reassign

The snapshot is read from latest state at request time (battery voltage, tyre pressures,
fuel / state of charge, active DTCs), each value with its age, because a stale reading
is worth knowing about too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import Engine, select

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.ingest.batch import WriteResult
from chelian.services.safety import names as n
from chelian.services.safety.announce import Announcer
from chelian.signals import Catalog
from chelian.storage.db import now_ms
from chelian.storage.repositories import roadside as repo
from chelian.storage.repositories.roadside import Ticket
from chelian.storage.tables import latest_state
from chelian.storage.values import decode_value

PROBLEMS: Final = ("flat_tyre", "battery", "fuel", "lockout", "tow", "other")

HEALTH_SIGNALS: Final = (
    "Vehicle.LowVoltageBattery.CurrentVoltage",
    *(f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.Pressure" for r in (1, 2) for s in ("Left", "Right")),
    "Vehicle.Powertrain.FuelSystem.RelativeLevel",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "Vehicle.Diagnostics.DTCList",
)

OPEN, ASSIGNED, EN_ROUTE, RESOLVED, CANCELLED = "open", "assigned", "en_route", "resolved", "cancelled"

TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "assign": (frozenset({OPEN, ASSIGNED}), ASSIGNED, n.ROADSIDE_ASSIGNED),
    "en_route": (frozenset({ASSIGNED}), EN_ROUTE, n.ROADSIDE_EN_ROUTE),
    "resolve": (frozenset({ASSIGNED, EN_ROUTE}), RESOLVED, n.ROADSIDE_RESOLVED),
    "cancel": (frozenset({OPEN, ASSIGNED, EN_ROUTE}), CANCELLED, n.ROADSIDE_CANCELLED),
}
"""action -> (states it may start from, state it leads to, event it announces)."""


class RoadsideService:
    def __init__(
        self, engine: Engine, announcer: Announcer, catalog: Catalog, clock: Callable[[], int] = now_ms
    ) -> None:
        self.engine = engine
        self.announcer = announcer
        self.catalog = catalog
        self.clock = clock

    def request(
        self,
        vehicle_id: int,
        problem: str,
        source: str,
        key: str | None = None,
        latitude: float | None = None,
        longitude: float | None = None,
        note: str | None = None,
    ) -> Ticket:
        """Open a ticket; a repeated `key` (a redelivered car event) returns the existing one."""
        if problem not in PROBLEMS:
            raise ValidationError(f"problem must be one of {', '.join(PROBLEMS)}, got {problem!r}")
        vin, now = self.announcer.vin(vehicle_id), self.clock()
        key = key or f"roadside:{vin}:api:{uuid.uuid4().hex}"
        with self.engine.begin() as conn:
            health, position = self._health(conn, vehicle_id)
            if latitude is None or longitude is None:
                latitude, longitude = position
            ticket = repo.insert_ticket(
                conn,
                dict(
                    vehicle_id=vehicle_id,
                    key=key,
                    source=source,
                    problem=problem,
                    status=OPEN,
                    latitude=latitude,
                    longitude=longitude,
                    health=health,
                    created_ms=now,
                    updated_ms=now,
                ),
            )
            if ticket is None:
                raise ConflictError(f"roadside request {key} was already made")
            repo.add_update(conn, ticket.id, now, OPEN, source, None, note)
        self.announcer.publish(n.ROADSIDE_REQUESTED, vehicle_id, now, key, self.describe(ticket, note=note))
        return ticket

    def _health(self, conn: Any, vehicle_id: int) -> tuple[dict[str, Any], tuple[float | None, float | None]]:
        """The health snapshot, and the car's last position (used when the request has none)."""
        paths = [*HEALTH_SIGNALS, n.LATITUDE, n.LONGITUDE]
        rows = conn.execute(
            select(
                latest_state.c.path, latest_state.c.ts_ms, latest_state.c.value_num, latest_state.c.value_text
            ).where(latest_state.c.vehicle_id == vehicle_id, latest_state.c.path.in_(paths))
        )
        found: dict[str, Any] = {}
        for path, ts_ms, num, text in rows:
            signal = self.catalog.get(path)
            if signal is not None:
                found[path] = {"value": decode_value(signal, num, text), "ts_ms": ts_ms}
        lat, lon = found.pop(n.LATITUDE, None), found.pop(n.LONGITUDE, None)
        return found, ((lat["value"], lon["value"]) if lat and lon else (None, None))

    def transition(
        self,
        vehicle_id: int,
        ticket_id: int,
        action: str,
        actor: str,
        note: str | None = None,
        assignee: str | None = None,
    ) -> Ticket:
        allowed_from, status, event = TRANSITIONS[action]
        if action == "assign" and not assignee:
            raise ValidationError("assign needs an assignee (who is coming)")
        now = self.clock()
        with self.engine.begin() as conn:
            ticket = repo.get(conn, vehicle_id, ticket_id)
            if ticket is None:
                raise NotFoundError(f"no roadside ticket {ticket_id} for this car")
            if not repo.set_status(conn, ticket_id, allowed_from, status, now, assignee):
                raise ConflictError(f"cannot {action.replace('_', ' ')} a ticket that is {ticket.status}")
            repo.add_update(conn, ticket_id, now, status, actor, assignee, note)
            ticket = repo.get(conn, vehicle_id, ticket_id)
        assert ticket is not None
        self.announcer.publish(
            event, vehicle_id, now, f"roadside:{ticket_id}:{status}:{now}", self.describe(ticket, note=note)
        )
        return ticket

    @staticmethod
    def describe(t: Ticket, **extra: Any) -> dict[str, Any]:
        return {
            "ticket_id": t.id,
            "problem": t.problem,
            "status": t.status,
            "assignee": t.assignee,
            "latitude": t.latitude,
            "longitude": t.longitude,
            "source": t.source,
            **extra,
        }


class RoadsideObserver:
    """Ingest commit observer: the car's `roadside_requested` events become tickets."""

    def __init__(self, service: RoadsideService) -> None:
        self.service = service

    def on_committed(self, result: WriteResult) -> None:
        for event in result.new_events:
            if event.type != n.CAR_ROADSIDE_REQUESTED:
                continue
            d = event.data if isinstance(event.data, dict) else {}
            problem = d.get("problem") if d.get("problem") in PROBLEMS else "other"
            lat, lon = d.get("lat"), d.get("lon")
            position_ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
            try:
                self.service.request(
                    event.vehicle_id,
                    problem,
                    "car",
                    key=f"roadside:{self.service.announcer.vin(event.vehicle_id)}:{event.seq}",
                    latitude=lat if position_ok else None,
                    longitude=lon if position_ok else None,
                    note=d.get("note") if isinstance(d.get("note"), str) else None,
                )
            except ConflictError:
                pass  # the same request seen again
