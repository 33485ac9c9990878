"""Stolen-car tracking through a real broker, both deployment shapes: the owner's report sends
a signed `set_tracking` that a simulated car (the real agent) obeys, so a parked car that sent
its position once starts sending it twice a second into the report's track; recovery sends
the stop and the car falls silent again."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select

from chelian.events import EventBus
from chelian.metrics import Metrics
from chelian.runtime import build_ingest, build_relay
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.sim_fleet import provision_fleet
from chelian.services.safety.announce import Announcer
from chelian.services.safety.theft import TheftObserver, TheftService
from chelian.signals import Catalog
from chelian.sim.commands import command_executors
from chelian.sim.fleet import Fleet, SimCarConfig
from chelian.storage.repositories import commands as command_repo
from chelian.storage.repositories import vehicles
from chelian.storage.tables import telemetry
from tests.fixtures_brokers import wait_until

LAT = "Vehicle.CurrentLocation.Latitude"


def positions(engine, vehicle_id: int) -> int:
    """Telemetry messages of the car that carry its latitude."""
    with engine.connect() as conn:
        rows = conn.execute(select(telemetry.c.signals).where(telemetry.c.vehicle_id == vehicle_id)).scalars()
        return sum(LAT in signals for signals in rows)


def status(engine, command_id: str) -> str | None:
    with engine.connect() as conn:
        row = command_repo.get(conn, command_id)
    return None if row is None else row.status


@pytest.mark.slow
def test_a_stolen_car_reports_its_position_at_high_rate_until_recovered(broker_stack, tmp_path, request):
    engine, settings = broker_stack.engine, broker_stack.settings
    owner = sign_up(engine, "stolen@example.com", "password1")
    [creds] = provision_fleet(engine, "stolen@example.com", 1, settings.car_mqtt_url)
    broker_stack.sync()
    name = f"{os.getpid()}-{request.node.name[-24:]}"
    relay = build_relay(settings, engine, client_id=f"stolen-relay-{name}").start()
    announcer = Announcer(engine, EventBus())
    ingest = build_ingest(settings, engine, Catalog.builtin(), Metrics(), client_id=f"stolen-ingest-{name}",
                          observers=[TheftObserver(engine, announcer)]).start()
    theft = TheftService(engine, announcer, lambda: relay.service, tracking_interval_ms=500,
                         tracking_duration_s=600)
    fleet = Fleet([SimCarConfig.from_credentials(creds)], broker_stack.host, broker_stack.port, rate_hz=1,
                  commands=command_executors(settings.data_dir), random_faults=False,
                  seq_path=tmp_path / "sim" / "seq.json", mqtt_version=5 if broker_stack.mqtt5 else 4)
    fleet.vehicle(creds.vin).phase_left_s = 3600.0  # parked, its position never changes
    with engine.connect() as conn:
        car = vehicles.by_vin(conn, creds.vin)
    try:
        fleet.start()
        assert fleet.wait_connected(20)
        assert wait_until(lambda: creds.vin in relay.online and positions(engine, car.id) >= 1, timeout=15)
        parked = positions(engine, car.id)
        assert not wait_until(lambda: positions(engine, car.id) > parked + 1, timeout=3), \
            "parked and not tracked: the position is inside its deadband, so it is not resent"

        report = theft.report(car, owner.id, "gone from the driveway")
        track = command_repo.by_idempotency_key
        with engine.connect() as conn:
            start = track(conn, owner.id, f"theft:{report.id}:track")
        assert start is not None and start.args == {"interval_ms": 500, "duration_s": 600}
        assert (start.requested_by, start.origin) == (owner.id, "service:theft"), "the audit trail: who"
        assert wait_until(lambda: status(engine, start.id) == "succeeded", timeout=15)
        assert fleet.agent(creds.vin).tracking.interval_s(start.created_ms + 1000) == 0.5
        before = positions(engine, car.id)
        assert wait_until(lambda: positions(engine, car.id) >= before + 10, timeout=20), \
            "tracked: a fix every 500 ms although the car stands still"
        assert wait_until(lambda: len(theft.current(car)[1]) >= 10, timeout=10), "the report's track fills"

        theft.recover(car, "found two streets away")
        with engine.connect() as conn:
            stop = track(conn, owner.id, f"theft:{report.id}:untrack")
        assert stop is not None and stop.args["duration_s"] == 0
        assert wait_until(lambda: status(engine, stop.id) == "succeeded", timeout=15)
        assert fleet.agent(creds.vin).tracking.active(stop.created_ms + 1000) is None
        settled = positions(engine, car.id)
        assert not wait_until(lambda: positions(engine, car.id) > settled + 1, timeout=3), \
            "recovered: back to the normal rate"
    finally:
        fleet.stop()
        ingest.stop()
        relay.stop()
