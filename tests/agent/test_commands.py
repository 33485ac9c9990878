"""The car's executor and keystore: replay window, resends, reboots, the announcement."""

from __future__ import annotations

import json
import stat

import pytest

from chelian.agent.keystore import WINDOW, Keystore, ReplayWindow
from chelian.services.commands import catalog
from chelian.services.commands.envelope import key_id, load_public, open_sealed, unwrap
from tests.services.commands.car import T0, VIN, make_car
from tests.services.commands.signing import SigningKey


@pytest.fixture
def car(tmp_path):
    return make_car(tmp_path)


def test_replay_window_accepts_late_arrivals_once():
    w = ReplayWindow()
    for ctr in (1, 2, 5, 4, 3, 70):
        assert w.fresh(ctr)
        w.mark(ctr)
    assert not any(w.fresh(c) for c in (1, 2, 3, 4, 5, 70)), "every used counter is spent"
    assert w.fresh(70 - WINDOW + 1) and not w.fresh(70 - WINDOW), "older than the window is refused"
    w.mark(70 + 1000)
    assert w.seen == 1 and w.fresh(1069) and not w.fresh(1070)


def test_out_of_order_delivery_is_accepted(car):
    earlier, later = (car.platform.command(VIN, t, iat=T0) for t in ("lock", "honk_flash"))
    assert earlier.ctr < later.ctr
    assert car.send(car.platform.sign(later)).status == "succeeded"
    assert car.send(car.platform.sign(earlier)).status == "succeeded"


def test_a_resent_envelope_gets_the_same_ack_and_acts_once(car):
    payload = car.platform.signed(VIN, "honk_flash", {"seconds": 2}, iat=T0)
    first = car.executor.handle(payload)
    car.clock.now += 3_000
    assert car.executor.handle(payload) == first
    assert car.body.calls == [("honk_flash", 2.0)]


def test_counters_and_answers_survive_a_reboot(car):
    payload = car.platform.signed(VIN, "lock", iat=T0)
    first = car.executor.handle(payload)
    rebooted = car.reopen()
    assert rebooted.executor.handle(payload) == first, "a resend after reboot still gets the original ack"
    reuse = car.platform.signed(VIN, "unlock", ctr=unwrap_ctr(payload), iat=T0)
    assert rebooted.send(reuse).reason == catalog.REPLAYED
    assert car.body.calls == [("lock", None)]


def unwrap_ctr(payload: bytes) -> int:
    return json.loads(unwrap(payload).env)["ctr"]


def test_keystore_is_private_and_seeds_apply_only_at_creation(car, tmp_path):
    assert stat.S_IMODE(car.path.stat().st_mode) == 0o600
    revoke = car.owner.signed(VIN, "revoke_key", {"kid": car.platform.kid}, iat=T0)
    assert car.send(revoke).status == "succeeded"
    again = Keystore.open(car.path, VIN, platform_key=car.platform.public)
    assert again.entry(car.platform.kid).revoked_ms == T0, "re-opening with seeds must not undo a revocation"
    assert again.agent_key.private_bytes_raw() == car.executor.keystore.agent_key.private_bytes_raw()
    with pytest.raises(ValueError):
        Keystore.open(tmp_path / "new.json", VIN)
    with pytest.raises(ValueError):
        Keystore.open(car.path, "WVWZZZ1JZ3W386752")


def test_re_enrolling_a_revoked_key_keeps_its_counter(car):
    driver = SigningKey()
    enrol = {"kid": driver.kid, "pub": driver.public, "role": "driver"}
    assert car.send(car.owner.signed(VIN, "enrol_key", enrol, iat=T0)).status == "succeeded"
    captured = driver.signed(VIN, "unlock", iat=T0)
    assert car.send(driver.signed(VIN, "lock", iat=T0)).status == "succeeded"
    assert car.send(car.owner.signed(VIN, "revoke_key", {"kid": driver.kid}, iat=T0)).status == "succeeded"
    assert car.send(car.owner.signed(VIN, "enrol_key", enrol, iat=T0)).status == "succeeded"
    car.executor.keystore.recent.clear()
    assert car.send(captured).status == "succeeded", "unused counter, still in the window"
    assert car.send(driver.signed(VIN, "lock", ctr=1, iat=T0)).reason == catalog.REPLAYED


def test_revoking_an_unknown_key_fails(car):
    ack = car.send(car.owner.signed(VIN, "revoke_key", {"kid": SigningKey().kid}, iat=T0))
    assert (ack.status, ack.reason) == ("failed", catalog.ACTUATION_FAILED)


def test_locate_answers_with_the_position(car):
    ack = car.send(car.platform.signed(VIN, "locate", iat=T0))
    assert ack.status == "succeeded" and ack.result["lat"] == 42.5063 and ack.result["heading"] == 90.0


def test_unreadable_payloads_get_no_answer(car):
    assert car.executor.handle(b"\x00garbage") is None
    assert car.executor.handle(b'{"v": 1}') is None


def test_announcement_is_signed_by_the_cars_own_key(car):
    sealed = unwrap(car.executor.announcement())
    pub = load_public(car.executor.agent_public_key)
    assert sealed.pub == pub.public_bytes_raw() and sealed.kid == key_id(sealed.pub)
    assert open_sealed(sealed, pub) == {"kind": "agent_key", "vin": VIN, "ts": T0}


def test_a_waiting_immobilise_survives_a_reboot(car):
    car.body.speed = 40.0
    payload = car.platform.signed(VIN, "immobilise", iat=T0)
    assert car.send(payload) is None
    rebooted = car.reopen()
    assert rebooted.send(payload) is None, "the cloud's resend finds it still waiting, not replayed"
    car.body.speed = 0.0
    [ack] = [rebooted.read_ack(a) for a in rebooted.executor.tick()]
    assert ack.status == "succeeded" and car.body.immobilised
    assert rebooted.reopen().executor.tick() == [] and rebooted.executor.keystore.waiting == {}


def test_clear_dtcs_is_a_signed_command_the_car_performs(car):
    ack = car.send(car.platform.signed(VIN, "clear_dtcs", iat=T0))
    assert ack.status == "succeeded" and ("clear_dtcs", None) in car.body.calls
