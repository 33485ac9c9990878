"""The safety capability assembled: services for the API, observers for ingest, the notifier.

`Platform` builds one with the platform's bus and hands `observers` to ingest; an app built
without a Platform (tests, `chelian api` alone) gets one with a private bus, so owner actions
still reach the outbox even where no ingest runs.

Example:
    safety = SafetyServices.build(engine, bus, catalog)
    platform.observers.extend(safety.observers)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from chelian.config import Settings
from chelian.events import EventBus
from chelian.ingest.processor import CommitObserver
from chelian.services.notifications.outbox import Notifier
from chelian.services.safety.announce import Announcer
from chelian.services.safety.contacts import ContactService
from chelian.services.safety.crash import CrashObserver, CrashRules
from chelian.services.safety.history import StoredTelemetry
from chelian.services.safety.incidents import IncidentService
from chelian.services.safety.movement import MovementGuard, MovementObserver
from chelian.services.safety.roadside import RoadsideObserver, RoadsideService
from chelian.services.safety.theft import CommandCreator, TheftObserver, TheftService
from chelian.signals import Catalog


@dataclass
class SafetyServices:
    incidents: IncidentService
    roadside: RoadsideService
    theft: TheftService
    contacts: ContactService
    notifier: Notifier
    observers: list[CommitObserver]

    @classmethod
    def build(
        cls,
        engine: Engine,
        bus: EventBus,
        catalog: Catalog,
        *,
        commands: Callable[[], CommandCreator | None] = lambda: None,
        grace_ms: int | None = None,
        rules: CrashRules | None = None,
        settings: Settings | None = None,
    ) -> SafetyServices:
        """`settings` carries the operator's thresholds (None: the documented defaults);
        `grace_ms` and `rules` override them (tests)."""
        s = settings or Settings.model_construct()
        announcer = Announcer(engine, bus)
        notifier = Notifier(engine)
        notifier.subscribe(bus)
        grace_ms = round(s.crash_grace_s * 1000) if grace_ms is None else grace_ms
        incidents = IncidentService(engine, announcer, grace_ms=grace_ms, outbox=notifier.enqueue)
        roadside = RoadsideService(engine, announcer, catalog)
        guard = MovementGuard(s.unauthorised_movement_speed_kmh, s.unauthorised_movement_radius_m)
        theft = TheftService(engine, announcer, commands, tracking_interval_ms=s.stolen_tracking_interval_ms,
                             tracking_duration_s=s.stolen_tracking_duration_s)
        observers: list[CommitObserver] = [
            CrashObserver(incidents, rules or crash_rules(s), StoredTelemetry(engine, catalog)),
            RoadsideObserver(roadside),
            MovementObserver(engine, announcer, guard),
            TheftObserver(engine, announcer, moving_kmh=s.unauthorised_movement_speed_kmh,
                          radius_m=s.stolen_movement_radius_m, theft=theft),
        ]
        return cls(incidents, roadside, theft, ContactService(engine), notifier, observers)


def crash_rules(s: Settings) -> CrashRules:
    return CrashRules(accel_threshold=s.crash_accel_threshold_ms2, min_speed_kmh=s.crash_min_speed_kmh,
                      stopped_kmh=s.crash_stopped_kmh, collapse_ms=s.crash_collapse_window_ms)
