"""A car, its owner and the safety services around an in-process bus, on both databases."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine

from chelian.events import EventBus
from chelian.events.bus import DomainEvent
from chelian.services.notifications.outbox import Notifier
from chelian.services.safety.announce import Announcer
from chelian.services.safety.incidents import IncidentService
from chelian.storage.repositories import vehicles
from chelian.storage.repositories.users import User
from chelian.storage.repositories.vehicles import Vehicle
from tests.factories import make_car, make_owner

T0 = 1_764_000_000_000


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Safety:
    engine: Engine
    owner: User
    car: Vehicle
    bus: EventBus
    clock: Clock
    announcer: Announcer
    incidents: IncidentService
    seen: list[DomainEvent] = field(default_factory=list)

    def names(self) -> list[str]:
        return [e.name for e in self.seen]


@pytest.fixture
def safety(engine: Engine) -> Safety:
    owner = make_owner(engine)
    creds = make_car(engine, owner)
    with engine.connect() as conn:
        car = vehicles.by_vin(conn, creds.vin)
    bus, clock = EventBus(), Clock()
    announcer = Announcer(engine, bus)
    notifier = Notifier(engine, clock=clock)
    s = Safety(
        engine,
        owner,
        car,
        bus,
        clock,
        announcer,
        IncidentService(
            engine, announcer, grace_ms=30_000, window_ms=120_000, outbox=notifier.enqueue, clock=clock
        ),
    )
    bus.subscribe("*", s.seen.append)
    notifier.subscribe(bus)
    return s
