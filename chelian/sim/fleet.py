"""N simulated cars on one street grid, each its own MQTT client speaking the vehicle link.

Every car behaves like a real one towards the broker: client id and username are its VIN,
it authenticates with its own secret, sets a retained `{"state": "offline"}` last will,
announces `{"state": "online", "ts": ...}` (retained) after every connect, and publishes
telemetry and events at QoS 1 with per-car sequence numbers that survive restarts.

Every tick publishes one telemetry message: the motion signals (speed, position, heading)
always, anything else only when it changed since the previous message, and a full snapshot
after every (re)connect and every `full_snapshot_s`, so the cloud's latest state is complete
without repeating unchanged door locks every second.

Threads: paho runs one network thread per car (reconnects, resends unacknowledged QoS 1
messages, queues while offline); one ticker thread steps every car at `rate_hz` with a
fixed time step, so the simulation itself stays deterministic whatever the scheduling.

Example:
    fleet = Fleet([SimCarConfig(vin, vin, secret)], "127.0.0.1", 1883, rate_hz=1).start()
    fleet.wait_connected(5)
    ...
    fleet.stop()
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from chelian.link import topics
from chelian.sim.grid import StreetGrid
from chelian.sim.models import model_for_vin
from chelian.sim.seqstore import SeqStore
from chelian.sim.vehicle import SimVehicle

log = logging.getLogger(__name__)

DEFAULT_CENTRE = (42.2808, -83.7430)
"""Ann Arbor, Michigan: home of Mcity, a fitting town to test-drive connected cars in."""
ALWAYS_SENT = frozenset({
    "Vehicle.Speed", "Vehicle.IsMoving", "Vehicle.CurrentLocation.Latitude",
    "Vehicle.CurrentLocation.Longitude", "Vehicle.CurrentLocation.Heading",
})
MAX_QUEUED = 10_000
"""Messages a car keeps while offline; older ones stay, newer ones are dropped beyond this."""
CLIENT_OPTIONS: dict[int, dict[str, Any]] = {
    4: {"protocol": mqtt.MQTTv311, "clean_session": True},
    5: {"protocol": mqtt.MQTTv5},
}
"""Per MQTT version: how paho is told which protocol to speak (3.1.1 is "4" on the wire)."""


class HasCarCredentials(Protocol):
    vin: str
    mqtt_username: str
    mqtt_password: str


@dataclass(frozen=True, slots=True)
class SimCarConfig:
    vin: str
    username: str
    password: str
    seed: int | None = None
    """None: derived from the fleet seed and the VIN, so every car drives differently."""

    @classmethod
    def from_credentials(cls, creds: HasCarCredentials, seed: int | None = None) -> SimCarConfig:
        return cls(creds.vin, creds.mqtt_username, creds.mqtt_password, seed)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _payload(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


OFFLINE = _payload(state="offline")


@dataclass
class _Car:
    config: SimCarConfig
    vehicle: SimVehicle
    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    last_sent: dict[str, Any] = field(default_factory=dict)
    needs_full: bool = True
    last_full_s: float = float("-inf")
    published: int = 0
    dropped: int = 0


class Fleet:
    """Drives `cars` against the broker at host:port until `stop()`."""

    def __init__(self, cars: list[SimCarConfig], host: str, port: int, rate_hz: float = 1.0, *,
                 seed: int = 0, centre: tuple[float, float] = DEFAULT_CENTRE, seq_path: Path | None = None,
                 mqtt_version: int = 4, full_snapshot_s: float = 60.0, keepalive_s: int = 30) -> None:
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        if mqtt_version not in CLIENT_OPTIONS:
            raise ValueError(f"mqtt_version must be one of {sorted(CLIENT_OPTIONS)}")
        self.host, self.port, self.rate_hz = host, port, rate_hz
        self.mqtt_version, self.full_snapshot_s, self.keepalive_s = mqtt_version, full_snapshot_s, keepalive_s
        self.grid = StreetGrid.generate(*centre, seed=seed)
        self.seqs = SeqStore(seq_path)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        local = time.localtime()
        clock_s = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        self._cars = [self._make_car(c, seed, clock_s) for c in cars]

    def _make_car(self, config: SimCarConfig, fleet_seed: int, clock_s: float) -> _Car:
        seed = config.seed
        if seed is None:
            seed = int.from_bytes(hashlib.sha256(f"{fleet_seed}:{config.vin}".encode()).digest()[:8])
        vehicle = SimVehicle(model_for_vin(config.vin), self.grid, seed, clock_s=clock_s)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.vin,
                             **CLIENT_OPTIONS[self.mqtt_version])
        car = _Car(config, vehicle, client)
        client.username_pw_set(config.username, config.password)
        client.will_set(topics.vehicle_topic(config.vin, topics.STATUS), OFFLINE, qos=1, retain=True)
        client.max_queued_messages_set(MAX_QUEUED)
        client.reconnect_delay_set(1, 30)
        client.on_connect = lambda _c, _u, _f, reason, _p: self._on_connect(car, reason)
        client.on_disconnect = lambda _c, _u, _f, reason, _p: self._on_disconnect(car, reason)
        return car

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Fleet:
        """Connect every car (in the background, retrying) and start driving."""
        for car in self._cars:
            car.client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
            car.client.loop_start()
        self._ticker = threading.Thread(target=self._run, name="chelian-sim-ticker", daemon=True)
        self._ticker.start()
        log.info("sim_fleet_started cars=%d broker=%s:%d rate_hz=%s", len(self._cars), self.host, self.port,
                 self.rate_hz)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Say goodbye like a car switched off properly: an offline status, then DISCONNECT."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout_s)
        for car in self._cars:
            if car.connected.is_set():
                info = car.client.publish(self._status_topic(car), _payload(state="offline", ts=now_ms()),
                                          qos=1, retain=True)
                try:
                    info.wait_for_publish(timeout_s)
                except (RuntimeError, ValueError):
                    pass  # the link went away meanwhile; the broker sends the last will instead
            car.client.disconnect()
            car.client.loop_stop()
        log.info("sim_fleet_stopped published=%d", self.published)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        """True once every car is connected (False if that takes longer than `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        return all(car.connected.wait(max(0.0, deadline - time.monotonic())) for car in self._cars)

    def drop_connection(self, vin: str) -> None:
        """Lose a car's link without a DISCONNECT (a tunnel, a dead zone): the broker publishes
        its last will, and the car reconnects and says it is online again."""
        sock = self._car(vin).client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)

    # --- what the cars are doing ---------------------------------------------------------------

    @property
    def vins(self) -> list[str]:
        return [car.config.vin for car in self._cars]

    @property
    def connected(self) -> int:
        return sum(car.connected.is_set() for car in self._cars)

    @property
    def published(self) -> int:
        return sum(car.published for car in self._cars)

    @property
    def dropped(self) -> int:
        return sum(car.dropped for car in self._cars)

    def _car(self, vin: str) -> _Car:
        return next(car for car in self._cars if car.config.vin == vin)

    # --- MQTT ---------------------------------------------------------------------------------

    def _status_topic(self, car: _Car) -> str:
        return topics.vehicle_topic(car.config.vin, topics.STATUS)

    def _on_connect(self, car: _Car, reason: Any) -> None:
        if reason.is_failure:
            log.warning("sim_car_refused vin=%s reason=%s", car.config.vin, reason)
            return
        car.needs_full = True  # the cloud may have missed anything while we were away
        car.client.publish(self._status_topic(car), _payload(state="online", ts=now_ms()), qos=1, retain=True)
        car.connected.set()
        log.info("sim_car_connected vin=%s", car.config.vin)

    def _on_disconnect(self, car: _Car, reason: Any) -> None:
        car.connected.clear()
        if not self._stop.is_set():
            log.warning("sim_car_disconnected vin=%s reason=%s", car.config.vin, reason)

    def _publish(self, car: _Car, channel: str, payload: str) -> None:
        info = car.client.publish(topics.vehicle_topic(car.config.vin, channel), payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            car.dropped += 1
        else:
            car.published += 1  # sent, or queued until the link is back

    # --- the clock ----------------------------------------------------------------------------

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        elapsed, deadline = 0.0, time.monotonic()
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            elapsed += period
            for car in self._cars:
                self._tick(car, period, elapsed)
            deadline += period
            if time.monotonic() - deadline > 10 * period:
                deadline = time.monotonic()  # fell far behind (suspended laptop): don't burst to catch up

    def _tick(self, car: _Car, dt_s: float, elapsed_s: float) -> None:
        vin, ts = car.config.vin, now_ms()
        signals = car.vehicle.step(dt_s)
        full, car.needs_full = car.needs_full, False
        if full or elapsed_s - car.last_full_s >= self.full_snapshot_s:
            changed, car.last_full_s = signals, elapsed_s
        else:
            changed = {k: v for k, v in signals.items() if k in ALWAYS_SENT or car.last_sent.get(k) != v}
        seq = self.seqs.next(vin, topics.TELEMETRY)
        self._publish(car, topics.TELEMETRY, _payload(seq=seq, ts=ts, signals=changed))
        car.last_sent = {**car.last_sent, **changed}
        for kind, data in car.vehicle.drain_events():
            seq = self.seqs.next(vin, topics.EVENTS)
            self._publish(car, topics.EVENTS, _payload(seq=seq, ts=ts, type=kind, data=data))
