"""Every reason a car refuses a command, each provoked on purpose, each with no action taken."""

from __future__ import annotations

import json

import pytest

from chelian.services.commands import catalog
from chelian.services.commands.envelope import CLOCK_SKEW_MS, b64u, canonical, unwrap
from tests.services.commands.car import T0, VIN, make_car
from tests.services.commands.signing import SigningKey


@pytest.fixture
def car(tmp_path):
    return make_car(tmp_path)


def test_a_valid_platform_command_acts_and_acks_succeeded(car):
    command = car.platform.command(VIN, "lock", iat=T0)
    ack = car.send(car.platform.sign(command))
    assert (ack.id, ack.status, ack.reason, ack.vin, ack.ts) == (command.id, "succeeded", None, VIN, T0)
    assert ack.h == unwrap(car.platform.sign(command)).hash
    assert car.body.locked and car.body.calls == [("lock", None)]


def _tampered(car):
    sealed = unwrap(car.platform.signed(VIN, "unlock", iat=T0))
    outer = json.loads(sealed.wire())
    outer["env"] = b64u(sealed.env.replace(b'"unlock"', b'"lock"'))
    return canonical(outer)


def _unknown_key(car):
    return SigningKey().signed(VIN, "lock", iat=T0)


def _revoked(car):
    revoke = car.owner.signed(VIN, "revoke_key", {"kid": car.platform.kid}, iat=T0)
    assert car.send(revoke).status == "succeeded"
    return car.platform.signed(VIN, "lock", iat=T0)


def _replayed(car):
    car.send(car.platform.signed(VIN, "honk_flash", ctr=5, iat=T0))
    car.body.calls.clear()
    return car.platform.signed(VIN, "lock", ctr=5, iat=T0)  # another envelope, same counter


def _too_old_counter(car):
    car.send(car.platform.signed(VIN, "honk_flash", ctr=100, iat=T0))
    car.body.calls.clear()
    return car.platform.signed(VIN, "lock", ctr=36, iat=T0)  # 64 behind the highest: outside the window


def _insufficient(car):
    guest = SigningKey()
    enrol = {"kid": guest.kid, "pub": guest.public, "role": "guest"}
    assert car.send(car.owner.signed(VIN, "enrol_key", enrol, iat=T0)).status == "succeeded"
    return guest.signed(VIN, "immobilise", iat=T0)


def _platform_enrols(car):
    other = SigningKey()
    enrol = {"kid": other.kid, "pub": other.public, "role": "owner"}
    return car.platform.signed(VIN, "enrol_key", enrol, iat=T0)


CASES = {
    "bad_signature": (_tampered, catalog.BAD_SIGNATURE),
    "unknown_key": (_unknown_key, catalog.UNKNOWN_KEY),
    "revoked_key": (_revoked, catalog.KEY_NOT_VALID_NOW),
    "wrong_vin": (lambda car: car.platform.signed("WVWZZZ1JZ3W386752", "lock", iat=T0), catalog.WRONG_VIN),
    "expired": (lambda car: car.platform.signed(VIN, "lock", iat=T0 - 60_000, exp=T0 - CLOCK_SKEW_MS - 1),
                catalog.EXPIRED),
    "not_yet_valid": (lambda car: car.platform.signed(VIN, "lock", iat=T0 + CLOCK_SKEW_MS + 1),
                      catalog.NOT_YET_VALID),
    "replayed": (_replayed, catalog.REPLAYED),
    "counter_below_window": (_too_old_counter, catalog.REPLAYED),
    "insufficient_role_guest": (_insufficient, catalog.INSUFFICIENT_ROLE),
    "insufficient_role_platform": (_platform_enrols, catalog.INSUFFICIENT_ROLE),
    "unknown_type": (lambda car: car.platform.signed(VIN, "self_destruct", iat=T0), catalog.MALFORMED),
    "bad_args": (lambda car: car.platform.signed(VIN, "honk_flash", {"seconds": 99}, iat=T0),
                 catalog.MALFORMED),
}


@pytest.mark.parametrize("case", CASES)
def test_rejection(car, case):
    make_payload, reason = CASES[case]
    payload = make_payload(car)
    ack = car.send(payload)
    assert (ack.status, ack.reason) == ("rejected", reason)
    assert ack.id == unwrap(payload).id, "the ack names the command even when it cannot be trusted"
    assert car.body.calls == [] and not car.body.locked


def test_clock_skew_allowance_accepts_slightly_early_and_late(car):
    assert car.send(car.platform.signed(VIN, "lock", iat=T0 + CLOCK_SKEW_MS - 1)).status == "succeeded"
    late = car.platform.signed(VIN, "unlock", iat=T0 - 40_000, exp=T0 - CLOCK_SKEW_MS + 1)
    assert car.send(late).status == "succeeded"


def test_key_validity_window_from_enrolment(car):
    driver = SigningKey()
    enrol = {"kid": driver.kid, "pub": driver.public, "role": "driver",
             "nbf": T0 + 60_000, "exp": T0 + 120_000}
    assert car.send(car.owner.signed(VIN, "enrol_key", enrol, iat=T0)).status == "succeeded"
    assert car.send(driver.signed(VIN, "unlock", iat=T0)).reason == catalog.KEY_NOT_VALID_NOW
    car.clock.now = T0 + 90_000
    assert car.send(driver.signed(VIN, "unlock", iat=car.clock.now)).status == "succeeded"
    car.clock.now = T0 + 120_000
    assert car.send(driver.signed(VIN, "lock", iat=car.clock.now)).reason == catalog.KEY_NOT_VALID_NOW


def test_enrol_refuses_a_kid_that_is_not_the_keys_own(car):
    a, b = SigningKey(), SigningKey()
    enrol = {"kid": a.kid, "pub": b.public, "role": "owner"}
    ack = car.send(car.owner.signed(VIN, "enrol_key", enrol, iat=T0))
    assert (ack.status, ack.reason) == ("rejected", catalog.MALFORMED)
    assert car.send(a.signed(VIN, "lock", iat=T0)).reason == catalog.UNKNOWN_KEY


def test_immobilise_while_moving_waits_until_stationary(car):
    car.body.speed = 50.0
    assert car.send(car.platform.signed(VIN, "immobilise", iat=T0)) is None
    assert car.executor.tick() == [] and not car.body.immobilised
    car.clock.now += 5_000
    car.body.speed = 0.4
    [ack] = [car.read_ack(a) for a in car.executor.tick()]
    assert (ack.status, ack.reason, ack.ts) == ("succeeded", None, T0 + 5_000) and car.body.immobilised


def test_immobilise_while_moving_until_expiry_fails_unsafe(car):
    car.body.speed = 50.0
    payload = car.platform.signed(VIN, "immobilise", iat=T0, lifetime_ms=20_000)
    assert car.send(payload) is None
    assert car.send(payload) is None, "a resend while waiting is not a second command"
    car.clock.now = T0 + 20_001
    [ack] = [car.read_ack(a) for a in car.executor.tick()]
    assert (ack.status, ack.reason) == ("failed", catalog.UNSAFE) and not car.body.immobilised
    assert car.executor.tick() == []


def test_mobilise_supersedes_a_waiting_immobilise(car):
    car.body.speed = 50.0
    assert car.send(car.platform.signed(VIN, "immobilise", iat=T0)) is None
    assert car.send(car.platform.signed(VIN, "mobilise", iat=T0)).status == "succeeded"
    car.body.speed = 0.0
    [ack] = [car.read_ack(a) for a in car.executor.tick()]
    assert (ack.status, ack.reason) == ("failed", catalog.SUPERSEDED) and not car.body.immobilised


def test_actuation_error_fails_with_its_detail(car):
    car.body.fail_with = "door 3 jammed"
    ack = car.send(car.platform.signed(VIN, "lock", iat=T0))
    assert (ack.status, ack.reason) == ("failed", catalog.ACTUATION_FAILED)
    assert ack.result == {"detail": "door 3 jammed"}
