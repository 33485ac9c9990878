"""The simulated fleet on the platform, both deployment shapes: cars provisioned for an
owner, driving real roads (pyrosm's bundled OSM extract), one of them crashing on cue; the
cloud stores what they say and its latest state tells the story."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.sim_fleet import provision_fleet
from chelian.signals import Catalog
from chelian.sim.behaviours import Scenario
from chelian.sim.fleet import Fleet, SimCarConfig
from chelian.sim.osm import OsmRoads
from chelian.storage.repositories import vehicles
from chelian.storage.tables import events, latest_state, telemetry
from tests.fixtures_brokers import wait_until

AIRBAG = "Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed"


def latest(engine, vin: str, path: str):
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, vin).id
        return conn.execute(select(latest_state.c.value_num).where(
            latest_state.c.vehicle_id == vid, latest_state.c.path == path)).scalar()


def count(engine, table, vin: str) -> int:
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, vin).id
        return len(conn.execute(select(table.c.seq).where(table.c.vehicle_id == vid)).all())


def event_types(engine, vin: str) -> list[str]:
    with engine.connect() as conn:
        vid = vehicles.by_vin(conn, vin).id
        return list(conn.execute(select(events.c.type).where(events.c.vehicle_id == vid)).scalars())


def test_a_fleet_on_real_roads_with_a_crash(broker_stack, tmp_path, request):
    pyrosm = pytest.importorskip("pyrosm")
    roads = OsmRoads.load(Path(pyrosm.get_data("test_pbf")))
    engine = broker_stack.engine
    sign_up(engine, "fleet@example.com", "password1")
    creds = provision_fleet(engine, "fleet@example.com", 3, broker_stack.settings.car_mqtt_url)
    broker_stack.sync()
    ingest = build_ingest(broker_stack.settings, engine, Catalog.builtin(), Metrics(),
                          client_id=f"fleet-test-{os.getpid()}-{request.node.name[-16:]}").start()
    fleet = Fleet([SimCarConfig.from_credentials(c) for c in creds], broker_stack.host, broker_stack.port,
                  rate_hz=4, network=roads, scenarios=[Scenario("crash", 1, after_s=0.0)],
                  seq_path=tmp_path / "sim" / "seq.json", mqtt_version=5 if broker_stack.mqtt5 else 4)
    for vin in fleet.vins:  # everybody sets off now rather than after a random wait
        car = fleet.vehicle(vin)
        car.phase, car.phase_left_s = "starting", 0.0
    crashed = creds[1].vin
    speeding = fleet.vehicle(crashed)
    while speeding.mover.speed_ms < 30 / 3.6:  # get it up to speed before it is on the air
        speeding.behaviours, saved = [], speeding.behaviours
        speeding.step(0.5)
        speeding.behaviours = saved
    try:
        fleet.start()
        assert fleet.wait_connected(20)
        assert wait_until(lambda: latest(engine, crashed, AIRBAG) == 1.0, timeout=40)
        assert wait_until(lambda: "crash_detected" in event_types(engine, crashed), timeout=10)
        assert wait_until(lambda: all(count(engine, telemetry, c.vin) >= 2 for c in creds), timeout=20)
    finally:
        fleet.stop()
        ingest.stop()
    assert fleet.vehicle(crashed).phase == "stranded"
    for c in creds:
        if c.vin != crashed:
            assert latest(engine, c.vin, AIRBAG) == 0.0
            assert latest(engine, c.vin, "Vehicle.TraveledDistance") is not None
    lat = latest(engine, crashed, "Vehicle.CurrentLocation.Latitude")
    assert 60.0 < lat < 61.0  # in Finland, where pyrosm's extract is, not in Ann Arbor


def test_signed_commands_move_a_simulated_cars_locks(broker_stack, tmp_path, request):
    import base64
    import json

    from chelian.link import topics
    from chelian.services.commands.keys import PlatformKey
    from chelian.sim.commands import command_executors
    from tests.services.commands.signing import SigningKey

    engine = broker_stack.engine
    data_dir = tmp_path / "data"
    platform = SigningKey(private=PlatformKey.load_or_create(data_dir).private)
    sign_up(engine, "locks@example.com", "password1")
    creds = provision_fleet(engine, "locks@example.com", 1, broker_stack.settings.car_mqtt_url)
    broker_stack.sync()
    vin = creds[0].vin
    cloud = broker_stack.service_client()
    cloud.subscribe(topics.vehicle_topic(vin, topics.ACKS))
    ingest = build_ingest(broker_stack.settings, engine, Catalog.builtin(), Metrics(),
                          client_id=f"locks-test-{os.getpid()}-{request.node.name[-16:]}").start()
    fleet = Fleet([SimCarConfig.from_credentials(creds[0])], broker_stack.host, broker_stack.port, rate_hz=2,
                  commands=command_executors(data_dir), seq_path=tmp_path / "sim" / "seq.json",
                  mqtt_version=5 if broker_stack.mqtt5 else 4)
    car = fleet.vehicle(vin)
    car.phase_left_s = 3600.0  # stays parked: the driver is away
    lock = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
    try:
        fleet.start()
        assert fleet.wait_connected(20)
        assert wait_until(lambda: latest(engine, vin, lock) == 1.0, timeout=15)
        assert json.loads(cloud.expect(timeout=10).payload)  # the car's key announcement comes first
        cloud.publish(topics.vehicle_topic(vin, topics.COMMANDS), platform.signed(vin, "unlock"))
        assert wait_until(lambda: latest(engine, vin, lock) == 0.0, timeout=15)
        ack = cloud.expect(timeout=10)
        env = json.loads(ack.payload)["env"]
        body = json.loads(base64.urlsafe_b64decode(env + "=" * (-len(env) % 4)))
        assert (body["kind"], body["vin"], body["status"]) == ("ack", vin, "succeeded"), body
        cloud.publish(topics.vehicle_topic(vin, topics.COMMANDS), platform.signed(vin, "lock"))
        assert wait_until(lambda: latest(engine, vin, lock) == 1.0, timeout=15)
    finally:
        fleet.stop()
        ingest.stop()
    assert car.controls.lock_override is True
