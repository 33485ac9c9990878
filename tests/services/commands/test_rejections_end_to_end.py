"""Every rejection reason, through the API: the car refuses, and `GET` of the command shows
`rejected` with that reason (tests/services/commands/test_rejections.py covers the car side).

The defects are made where they would arise, without touching the service's code:
* in the cloud, by giving the command service a platform key that signs a defective envelope
  (`DefectiveKey`): a signature damaged in transit, a counter the cloud had already used (a
  restored backup), a clock ten minutes slow, an envelope naming another car. The cloud stores
  the envelope it sent, so the car's ack, which quotes that envelope's hash, settles it;
* on the car, for rights: the owner enrolled the platform's key with a lesser role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from chelian.services.commands.catalog import DRIVER
from chelian.services.commands.envelope import Sealed, unb64u
from chelian.services.commands.keys import PlatformKey
from tests.factories import new_vin
from tests.fixtures_brokers import wait_until
from tests.services.commands import test_end_to_end as e2e
from tests.services.commands.test_end_to_end import linked_car, send, wait

relay, api, owner_headers = e2e.relay, e2e.api, e2e.owner_headers  # the same fixtures

Body = dict[str, Any]


class DefectiveKey:
    """The platform key, signing what `defect` makes of each command body (and, with
    `damage_signature`, flipping one bit of the signature after signing)."""

    def __init__(self, real: PlatformKey, defect: Callable[[Body], Body] = lambda b: b, *,
                 damage_signature: bool = False) -> None:
        self.real, self.defect, self.damage_signature = real, defect, damage_signature

    @property
    def kid(self) -> str:
        return self.real.kid

    @property
    def public(self) -> str:
        return self.real.public

    def seal(self, body: Body, id_hint: str) -> Sealed:
        sealed = self.real.seal(self.defect(dict(body)), id_hint)
        if self.damage_signature:
            sig = bytearray(sealed.sig)
            sig[7] ^= 0x01
            sealed = replace(sealed, sig=bytes(sig))
        return sealed


def _counter_reused(body: Body) -> Body:
    return body | {"ctr": body["ctr"] - 1}  # the previous command's counter, which the car spent


def _clock_ten_minutes_slow(body: Body) -> Body:
    slow = 10 * 60_000
    return body | {"iat": body["iat"] - slow, "exp": body["exp"] - slow}


def _addressed_to_another_car(body: Body) -> Body:
    return body | {"vin": new_vin()}


CLOUD_DEFECTS = {
    "bad_signature": dict(damage_signature=True),
    "replayed": dict(defect=_counter_reused),
    "expired": dict(defect=_clock_ten_minutes_slow),
    "wrong_vin": dict(defect=_addressed_to_another_car),
}


@pytest.fixture
def platform_key(relay):
    real = relay.service.platform_key
    yield real
    relay.service.platform_key = real


def _rejected_through_the_api(api, headers, car, command_type: str) -> dict[str, Any]:
    command = send(api, headers, car.vin, {"type": command_type})
    done = wait(api, headers, car.vin, command["id"], 10)
    assert done["status"] == "rejected", done
    listed = api.get(f"/api/v1/vehicles/{car.vin}/commands", headers=headers).json()["data"]
    assert any(r["id"] == command["id"] and r["reason"] == done["reason"] for r in listed), listed
    return done


@pytest.mark.parametrize("reason", list(CLOUD_DEFECTS))
def test_a_defective_envelope_is_rejected_with_its_reason(broker_stack, relay, api, owner_headers, tmp_path,
                                                           platform_key, reason):
    car = linked_car(broker_stack, relay, tmp_path).connect()
    try:
        assert wait_until(lambda: car.vin in relay.online, timeout=5)
        first = send(api, owner_headers, car.vin, {"type": "lock"})  # spends a counter, pins the car's key
        assert wait(api, owner_headers, car.vin, first["id"], 10)["status"] == "succeeded"
        car.body.calls.clear()

        relay.service.platform_key = DefectiveKey(platform_key, **CLOUD_DEFECTS[reason])
        done = _rejected_through_the_api(api, owner_headers, car, "unlock")
        assert done["reason"] == reason, done
        assert done["reason_text"], "the API explains the reason"
        assert car.body.calls == [] and car.body.locked, "a rejected command never moves the car"

        relay.service.platform_key = platform_key  # the car still obeys good envelopes afterwards
        good = send(api, owner_headers, car.vin, {"type": "unlock"})
        assert wait(api, owner_headers, car.vin, good["id"], 10)["status"] == "succeeded"
    finally:
        car.disconnect()


def test_a_command_beyond_the_keys_role_is_rejected_as_insufficient_role(broker_stack, relay, api,
                                                                         owner_headers, tmp_path):
    car = linked_car(broker_stack, relay, tmp_path)
    platform_public = unb64u(relay.service.platform_key.public)
    car.executor.keystore.enrol(platform_public, DRIVER, None, None)  # the owner demoted the platform
    car.connect()
    try:
        assert wait_until(lambda: car.vin in relay.online, timeout=5)
        done = _rejected_through_the_api(api, owner_headers, car, "immobilise")
        assert done["reason"] == "insufficient_role", done
        assert car.body.calls == [] and not car.body.immobilised
        lock = send(api, owner_headers, car.vin, {"type": "lock"})  # a driver key may still lock
        assert wait(api, owner_headers, car.vin, lock["id"], 10)["status"] == "succeeded"
    finally:
        car.disconnect()
