"""`set_tracking` through the owner API: a signed command with its arguments checked up front."""

from __future__ import annotations

import pytest

from chelian.services.commands.envelope import Command, load_public, open_sealed, unwrap
from tests.api.conftest import VIN_A


def post(client, owner, body):
    return client.post(f"/api/v1/vehicles/{VIN_A}/commands", headers=owner.headers, json=body)


def test_an_owner_starts_high_rate_tracking_with_a_signed_command(client, owner, car, service):
    r = post(client, owner, {"type": "set_tracking", "args": {"interval_ms": 500, "duration_s": 900}})
    assert r.status_code == 202, r.text
    assert r.json()["args"] == {"interval_ms": 500, "duration_s": 900}
    [(_cid, _vin, payload)] = service.sent
    platform = client.get("/api/v1/keys/platform", headers=owner.headers).json()
    command = Command.from_body(open_sealed(unwrap(payload), load_public(platform["public_key"])))
    assert (command.type, command.args) == ("set_tracking", {"interval_ms": 500, "duration_s": 900})


@pytest.mark.parametrize("args,reason", [
    ({"interval_ms": 10}, "interval_ms must be between 100 and 60000, got 10"),
    ({"duration_s": 100_000}, "duration_s must be between 0 and 86400, got 100000"),
    ({"interval_ms": "fast"}, "interval_ms must be a int, got str"),
])
def test_bad_tracking_arguments_are_400_with_the_reason(client, owner, car, service, args, reason):
    r = post(client, owner, {"type": "set_tracking", "args": args})
    assert r.status_code == 400 and reason in r.json()["detail"], r.text
    assert service.sent == []
