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

from chelian.events import EventBus
from chelian.ingest.processor import CommitObserver
from chelian.services.notifications.outbox import Notifier
from chelian.services.safety.announce import Announcer
from chelian.services.safety.contacts import ContactService
from chelian.services.safety.crash import CrashObserver, CrashRules
from chelian.services.safety.incidents import IncidentService
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
        grace_ms: int = 30_000,
        rules: CrashRules | None = None,
    ) -> SafetyServices:
        announcer = Announcer(engine, bus)
        notifier = Notifier(engine)
        notifier.subscribe(bus)
        incidents = IncidentService(engine, announcer, grace_ms=grace_ms, outbox=notifier.enqueue)
        roadside = RoadsideService(engine, announcer, catalog)
        observers: list[CommitObserver] = [
            CrashObserver(incidents, rules or CrashRules()),
            RoadsideObserver(roadside),
            TheftObserver(engine, announcer),
        ]
        return cls(
            incidents,
            roadside,
            TheftService(engine, announcer, commands),
            ContactService(engine),
            notifier,
            observers,
        )
