"""A real car's actuators: the CAN mapping's `actions:` on python-can's virtual bus (the frame
decoded back with cantools, confirmation from the decoded signals), hook programs (success,
failure with stderr, timeout), and what an unwired command answers."""

from __future__ import annotations

import stat
import threading
import time
import uuid
from pathlib import Path

import can
import pytest
from cantools.database import load_file

from chelian.agent.actuation import CarActuators, HookAction, car_actuators
from chelian.agent.actuators import ActuationError
from chelian.agent.can import CanDecoder, CanSignalSource, MappingError, load_mapping, parse_mapping
from chelian.agent.can.actions import CanActions
from chelian.agent.can.mapping import check_against_dbc
from chelian.agent.commands import CommandExecutor
from chelian.agent.keystore import Keystore
from chelian.services.commands import catalog
from tests.services.commands.car import T0, VIN, Clock
from tests.services.commands.car import Car as _Car
from tests.services.commands.signing import SigningKey

DATA = Path(__file__).parent / "data"
MAPPING = DATA / "body_demo.yaml"
DB = load_file(DATA / "body_demo.dbc")
COMMAND, STATUS = DB.get_message_by_name("BODY_COMMAND"), DB.get_message_by_name("BODY_STATUS")
LOCKED = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"


class BodyController:
    """The car's body ECU on the virtual bus: records every BODY_COMMAND, and (when `obeys`)
    locks/unlocks and reports it on BODY_STATUS, as a real one would."""

    def __init__(self, channel: str, *, obeys: bool = True, speed_kmh: float = 0.0) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.obeys, self.speed_kmh, self.locked = obeys, speed_kmh, False
        self.received: list[can.Message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> BodyController:
        self._thread.start()
        return self

    def report(self) -> None:
        data = STATUS.encode({"DOORS_LOCKED": int(self.locked), "VEHICLE_SPEED": self.speed_kmh})
        self.bus.send(can.Message(arbitration_id=STATUS.frame_id, data=data, is_extended_id=False))

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.bus.recv(timeout=0.05)
            if frame is None or frame.arbitration_id != COMMAND.frame_id:
                continue
            self.received.append(frame)
            request = str(COMMAND.decode(frame.data)["LOCK_REQUEST"])
            if self.obeys and request in ("lock", "unlock"):
                self.locked = request == "lock"
                self.report()

    def decoded(self) -> list[dict]:
        return [{k: v if isinstance(v, int | float) else str(v) for k, v in COMMAND.decode(f.data).items()}
                for f in self.received]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.bus.shutdown()


@pytest.fixture
def channel():
    return f"chelian-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def source(channel):
    src = CanSignalSource(CanDecoder(None, str(MAPPING)), interface="virtual", channel=channel).start()
    yield src
    src.stop()


def make_car(tmp_path, actuators) -> _Car:
    platform, owner, clock = SigningKey(), SigningKey(), Clock()
    path = tmp_path / "car" / "commands.json"
    store = Keystore.open(path, VIN, platform_key=platform.public, owner_key=owner.public)
    return _Car(CommandExecutor(VIN, store, actuators, clock), actuators, clock, platform, owner, path)


def wait_for(predicate, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- the mapping's `actions:` -------------------------------------------------------------------

def test_the_mapping_loads_its_actions():
    mapping = load_mapping(MAPPING)
    lock = mapping.action("lock")
    assert lock is not None and lock.frames[0].message == "BODY_COMMAND"
    assert lock.confirm is not None and (lock.confirm.vss, lock.confirm.value) == (LOCKED, True)
    assert mapping.action("honk_flash").repeat == 2 and mapping.action("clear_dtcs") is None


def test_bad_actions_are_reported_with_their_lines():
    text = MAPPING.read_text() + (
        "  honk:\n    send: [{message: BODY_COMMAND}]\n"
        "  mobilise:\n    send: []\n    repeat: 0\n"
        "  clear_dtcs:\n    send: [{message: BODY_COMMAND}]\n    confirm: {vss: Vehicle.Sped, value: 0}\n")
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, source="car.yaml")
    assert caught.value.problems == [
        "car.yaml:23: unknown action 'honk' (did you mean 'honk_flash'?)",
        "car.yaml:25: action mobilise: `send:` must be a non-empty list of {message: ..., signals: {...}}",
        "car.yaml:25: action mobilise: `repeat` must be a whole number from 1 to 50",
        "car.yaml:28: action clear_dtcs: unknown VSS path 'Vehicle.Sped' in `confirm`",
    ]


def test_actions_are_checked_against_the_dbc():
    text = MAPPING.read_text().replace("LOCK_REQUEST: unlock", "LOCK_REQUST: unlock") + (
        "  mobilise:\n    send: [{message: BODY_COMAND, signals: {}}]\n"
        "  clear_dtcs:\n    send: [{message: BODY_COMMAND, signals: {LOCK_REQUEST: open}}]\n")
    with pytest.raises(MappingError) as caught:
        check_against_dbc(parse_mapping(text, source="car.yaml"), DB)
    problems = "\n".join(caught.value.problems)
    assert "car.yaml:13: action unlock: message BODY_COMMAND has no signal 'LOCK_REQUST'" in problems
    assert "car.yaml:23: action mobilise: the DBC has no message 'BODY_COMAND' (did you mean BODY_COMMAND?)" \
        in problems
    assert "'open' is not one of its DBC values (lock, none, unlock)" in problems


def test_a_confirmation_must_be_a_signal_the_mapping_produces():
    text = MAPPING.read_text().replace("value: true, timeout_s: 1", "value: true, timeout_s: 1}\n#").replace(
        f"vss: {LOCKED}, value: true", "vss: Vehicle.Cabin.Door.Row2.DriverSide.IsLocked, value: true")
    with pytest.raises(MappingError, match="which no `signals:` entry of this mapping produces"):
        parse_mapping(text, source="x.yaml")


# --- CAN transmit on the virtual bus -----------------------------------------------------------

def test_a_lock_command_sends_the_encoded_frame_and_is_confirmed(tmp_path, source, channel):
    ecu = BodyController(channel).start()
    try:
        car = make_car(tmp_path, car_actuators(source, VIN, {}))
        ack = car.send(car.platform.signed(VIN, "lock", iat=T0))
        assert (ack.status, ack.reason) == ("succeeded", None), ack
        assert ecu.decoded() == [{"LOCK_REQUEST": "lock", "HORN_FLASH": 0, "HORN_SECONDS": 0,
                                  "IMMOBILISER_REQUEST": "none", "CLEAR_DTCS": 0}]
        assert ecu.received[0].arbitration_id == COMMAND.frame_id and source.snapshot()[LOCKED] is True
    finally:
        ecu.stop()


def test_an_action_the_car_does_not_confirm_fails(tmp_path, source, channel):
    ecu = BodyController(channel, obeys=False).start()
    try:
        ecu.locked = True
        ecu.report()
        assert wait_for(lambda: source.snapshot().get(LOCKED) is True)
        car = make_car(tmp_path, car_actuators(source, VIN, {}))
        started = time.monotonic()
        ack = car.send(car.platform.signed(VIN, "unlock", iat=T0))
        assert (ack.status, ack.reason) == ("failed", catalog.ACTUATION_FAILED)
        assert "unlock not confirmed" in ack.result["detail"] and LOCKED in ack.result["detail"]
        assert 0.45 <= time.monotonic() - started < 2.0, "waits for the mapping's timeout_s (0.5 s)"
        assert [d["LOCK_REQUEST"] for d in ecu.decoded()] == ["unlock"], "the frame did go out"
    finally:
        ecu.stop()


def test_repeats_and_unwired_actions(tmp_path, source, channel):
    ecu = BodyController(channel).start()
    try:
        car = make_car(tmp_path, car_actuators(source, VIN, {}))
        assert car.send(car.platform.signed(VIN, "honk_flash", iat=T0)).status == "succeeded"
        assert wait_for(lambda: len(ecu.received) == 2)
        assert all(d["HORN_FLASH"] == 1 and d["HORN_SECONDS"] == 3 for d in ecu.decoded())
        ack = car.send(car.platform.signed(VIN, "clear_dtcs", iat=T0))
        assert (ack.status, ack.reason) == ("failed", catalog.ACTUATION_FAILED)
        assert "clear_dtcs is not wired on this car" in ack.result["detail"]
        assert "[actuators.hooks]" in ack.result["detail"]
    finally:
        ecu.stop()


def test_immobilise_over_can_waits_until_the_car_is_stationary(tmp_path, source, channel):
    ecu = BodyController(channel, speed_kmh=48.0).start()
    try:
        ecu.report()
        assert wait_for(lambda: source.snapshot().get("Vehicle.Speed") == pytest.approx(48.0))
        car = make_car(tmp_path, car_actuators(source, VIN, {}))
        assert car.send(car.platform.signed(VIN, "immobilise", iat=T0)) is None, "parked while moving"
        assert car.executor.tick() == [] and ecu.received == [], "nothing sent while moving"
        ecu.speed_kmh = 0.0
        ecu.report()
        assert wait_for(lambda: source.snapshot().get("Vehicle.Speed") == 0.0)
        acks = [car.read_ack(a) for a in car.executor.tick()]
        assert [a.status for a in acks] == ["succeeded"]
        assert [d["IMMOBILISER_REQUEST"] for d in ecu.decoded()] == ["engage"]
    finally:
        ecu.stop()


def test_a_replayed_log_never_sends(tmp_path):
    log = tmp_path / "empty.log"
    log.write_text("")
    src = CanSignalSource(CanDecoder(None, str(MAPPING)), log_file=log, realtime=False).start()
    try:
        actuators = car_actuators(src, VIN, {})
        with pytest.raises(ActuationError, match="lock is not wired"):
            actuators.lock()
    finally:
        src.stop()


def test_a_can_send_error_is_an_actuation_error():
    def broken(_frame):
        raise can.CanOperationError("Transmit buffer full")

    actions = CanActions(DB, load_mapping(MAPPING), broken)
    with pytest.raises(ActuationError, match="CAN send failed: Transmit buffer full"):
        actions.run("honk_flash")


# --- hooks ------------------------------------------------------------------------------------

def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class StillCar:
    def snapshot(self):
        return {"Vehicle.Speed": 0.0, "Vehicle.CurrentLocation.Latitude": 42.5,
                "Vehicle.CurrentLocation.Longitude": -83.1}


def test_a_hook_runs_without_a_shell_and_gets_the_command(tmp_path):
    out = tmp_path / "ran.txt"
    hook = script(tmp_path, "car-horn", f'echo "$CHELIAN_VIN $CHELIAN_COMMAND $CHELIAN_SECONDS $1" > {out}\n')
    car = make_car(tmp_path, car_actuators(StillCar(), VIN, {"honk_flash": [str(hook), "--flash; rm -rf /"]}))
    ack = car.send(car.platform.signed(VIN, "honk_flash", {"seconds": 2}, iat=T0))
    assert (ack.status, ack.reason) == ("succeeded", None)
    assert out.read_text() == f"{VIN} honk_flash 2 --flash; rm -rf /\n", "an argument stays one argv entry"


def test_a_failing_hook_fails_the_command_with_its_stderr(tmp_path):
    noise = "x" * 2000
    hook = script(tmp_path, "car-lock", f'echo {noise} >&2\necho "relay board not found on /dev/i2c-1" >&2\n'
                                        "exit 3\n")
    car = make_car(tmp_path, car_actuators(StillCar(), VIN, {"lock": [str(hook)]}))
    ack = car.send(car.platform.signed(VIN, "lock", iat=T0))
    assert (ack.status, ack.reason) == ("failed", catalog.ACTUATION_FAILED)
    detail = ack.result["detail"]
    assert detail.startswith(f"hook {hook} exited with status 3: ...")
    assert detail.endswith("relay board not found on /dev/i2c-1") and len(detail) < 600, "only the tail"


def test_a_hook_that_hangs_is_stopped_at_its_timeout(tmp_path):
    hook = script(tmp_path, "car-immobilise", "echo engaging >&2\nexec sleep 30\n")
    action = HookAction([str(hook)], vin=VIN, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ActuationError, match=r"did not finish within 0.5 s"):
        action({}, "immobilise")
    assert time.monotonic() - started < 5


def test_a_missing_hook_program_is_a_clear_failure(tmp_path):
    actuators = CarActuators(StillCar(), {"unlock": HookAction([str(tmp_path / "nope")])})
    with pytest.raises(ActuationError, match="could not run"):
        actuators.unlock()
    with pytest.raises(ActuationError, match="mobilise is not wired"):
        actuators.set_immobilised(False)
    assert actuators.speed_kmh() == 0.0 and actuators.location()["lat"] == 42.5


def test_a_hook_wins_over_the_can_action_for_the_same_command(tmp_path, source, channel):
    ecu = BodyController(channel).start()
    try:
        marker = tmp_path / "hooked"
        hook = script(tmp_path, "car-lock", f"touch {marker}\n")
        actuators = car_actuators(source, VIN, {"lock": [str(hook)]})
        actuators.lock()
        actuators.honk_flash(3)
        assert marker.exists()
        assert wait_for(lambda: len(ecu.received) == 2)
        assert all(d["LOCK_REQUEST"] == "none" for d in ecu.decoded()), "lock went to the hook, not the bus"
        assert actuators.describe() == ("actuators: lock (hook), unlock (CAN), honk_flash (CAN), "
                                        "immobilise (CAN); not wired: mobilise, clear_dtcs")
    finally:
        ecu.stop()



