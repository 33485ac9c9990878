"""A car on a real broker for command tests: an MQTT client feeding `CommandExecutor`.

Stands in for the agent runtime with exactly the protocol's steps: subscribe to `commands`,
then publish `online` (retained) and the key announcement; hand each command to the executor
and publish its ack; tick once in a while; after acting on lock/unlock, report the doors in
telemetry (as the real agent does through its signal source).
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import Keystore
from chelian.link import topics
from chelian.link.codec import encode_status, encode_telemetry
from chelian.services.fleet.provisioning import CarCredentials
from chelian.storage.db import now_ms
from tests.agent.fake_actuators import FakeActuators
from tests.fixtures_brokers import BrokerStack, MqttProbe

DOORS = [f"Vehicle.Cabin.Door.Row{r}.{s}.IsLocked" for r in (1, 2) for s in ("DriverSide", "PassengerSide")]


class LinkedCar:
    def __init__(self, stack: BrokerStack, creds: CarCredentials, platform_public: str,
                 workdir: Path) -> None:
        self.stack, self.creds, self.vin = stack, creds, creds.vin
        self.body = FakeActuators()
        store = Keystore.open(workdir / f"{creds.vin}.json", creds.vin, platform_key=platform_public)
        self.executor = CommandExecutor(creds.vin, store, self.body)
        self.topic = {c: topics.vehicle_topic(creds.vin, c) for c in topics.CHANNELS}
        self.handled = 0
        self._seq = itertools.count(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.probe: MqttProbe | None = None

    def connect(self) -> LinkedCar:
        will = (self.topic[topics.STATUS], encode_status(False), 1, True)
        self.probe = self.stack.car_client(self.creds, connect=False, will=will)
        assert self.probe.connect() is not None and self.probe.connected
        assert self.probe.subscribe(self.topic[topics.COMMANDS]) == 1
        assert self.probe.publish(self.topic[topics.STATUS], encode_status(True, now_ms()), retain=True)
        assert self.probe.publish(self.topic[topics.ACKS], self.executor.announcement())
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"car-{self.vin}", daemon=True)
        self._thread.start()
        return self

    def disconnect(self) -> None:
        """Switched off cleanly: offline (retained), then DISCONNECT."""
        assert self.probe is not None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.probe.publish(self.topic[topics.STATUS], encode_status(False, now_ms()), retain=True)
        self.probe.close()

    def _serve(self) -> None:
        assert self.probe is not None
        while not self._stop.is_set():
            msg = self.probe.expect(self.topic[topics.COMMANDS], timeout=0.05)
            acks = self.executor.tick()
            if msg is not None:
                ack = self.executor.handle(msg.payload)
                self.handled += 1
                acks += [ack] if ack is not None else []
            for ack in acks:
                self.probe.publish(self.topic[topics.ACKS], ack)
            if msg is not None:
                self._report_doors()

    def _report_doors(self) -> None:
        assert self.probe is not None
        doors = {d: self.body.locked for d in DOORS}
        self.probe.publish(self.topic[topics.TELEMETRY], encode_telemetry(next(self._seq), now_ms(), doors))
