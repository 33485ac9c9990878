"""Commands over the API: 202 and idempotency, ownership, waiting, listing, pre-signed envelopes, keys."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chelian.api.routes import commands as commands_route
from chelian.security.hashing import token_digest
from chelian.services.commands.envelope import (
    Command,
    b64u,
    load_public,
    open_sealed,
    unwrap,
)
from chelian.services.commands.lifecycle import CommandService
from chelian.storage.db import now_ms
from chelian.storage.repositories import commands as repo
from tests.api.conftest import VIN_A, VIN_B, add_car, make_owner
from tests.services.commands.signing import SigningKey


def post(client, owner, body, key=None, vin=VIN_A):
    headers = dict(owner.headers) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/api/v1/vehicles/{vin}/commands", headers=headers, json=body)


def test_send_returns_202_with_a_queued_signed_command(client, owner, car, service):
    r = post(client, owner, {"type": "honk_flash", "args": {"seconds": 2}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["type"], body["args"], body["signer"], body["counter"]) == \
        ("queued", "honk_flash", {"seconds": 2.0}, "platform", 1)
    assert isinstance(body["requested_by"], int) and body["origin"] == "user"
    [(cid, vin, payload)] = service.sent
    assert (cid, vin) == (body["id"], VIN_A)
    platform = client.get("/api/v1/keys/platform", headers=owner.headers).json()
    sealed = unwrap(payload)
    assert sealed.kid == platform["kid"] == body["kid"]
    command = Command.from_body(open_sealed(sealed, load_public(platform["public_key"])))
    assert (command.id, command.vin, command.type, command.ctr) == (body["id"], VIN_A, "honk_flash", 1)
    assert command.exp - command.iat == 30_000
    assert post(client, owner, {"type": "lock"}).json()["counter"] == 2


def test_same_idempotency_key_and_body_is_the_same_command_sent_once(client, owner, car, service):
    first = post(client, owner, {"type": "lock", "expires_in_s": 60}, key="k-1")
    again = post(client, owner, {"type": "lock", "expires_in_s": 60, "args": {}}, key="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert len(service.sent) == 1
    assert len(client.get(f"/api/v1/vehicles/{VIN_A}/commands", headers=owner.headers).json()["data"]) == 1


def test_same_idempotency_key_with_another_body_is_409_with_the_reason(client, owner, car, service):
    first = post(client, owner, {"type": "lock"}, key="k-2").json()
    r = post(client, owner, {"type": "unlock"}, key="k-2")
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "k-2" in detail and first["id"] in detail and "unlock" in detail
    add_car(client, owner, VIN_B)
    assert post(client, owner, {"type": "lock"}, key="k-2", vin=VIN_B).status_code == 409, "VIN is hashed"
    assert len(service.sent) == 1


def test_concurrent_retries_with_one_key_make_one_command(client, owner, car, service):
    ids, errors = [], []

    def send():
        r = post(client, owner, {"type": "unlock"}, key="race")
        (ids if r.status_code == 202 else errors).append(r.json().get("id", r.text))

    threads = [threading.Thread(target=send) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and len(set(ids)) == 1 and len(service.sent) == 1


def test_someone_elses_car_is_404(client, owner, car, service):
    cid = post(client, owner, {"type": "lock"}).json()["id"]
    other = make_owner(client, "bo@example.com")
    assert post(client, other, {"type": "lock"}).status_code == 404
    assert client.get(f"/api/v1/vehicles/{VIN_A}/commands/{cid}", headers=other.headers).status_code == 404
    assert client.get(f"/api/v1/vehicles/{VIN_A}/commands", headers=other.headers).status_code == 404
    add_car(client, other, VIN_B)
    assert client.get(f"/api/v1/vehicles/{VIN_B}/commands/{cid}", headers=other.headers).status_code == 404
    assert service.sent[1:] == []


BAD = [
    ({"type": "self_destruct"}, 400, "unknown command type"),
    ({"type": "honk_flash", "args": {"seconds": 99}}, 400, "seconds"),
    ({"type": "lock", "args": {"force": True}}, 400, "no argument force"),
    ({"type": "enrol_key", "args": {"kid": "a" * 22, "pub": "b" * 43, "role": "owner"}}, 400, "owner key"),
    ({"type": "lock", "expires_in_s": 0}, 400, "expires_in_s"),
    ({"type": "lock", "expires_in_s": 86_401}, 400, "expires_in_s"),
    ({}, 422, "either type"),
]


@pytest.mark.parametrize("body,status,reason", BAD)
def test_invalid_requests_say_why(client, owner, car, service, body, status, reason):
    r = post(client, owner, body)
    assert r.status_code == status and reason in str(r.json()["detail"]), r.text
    assert service.sent == []


def test_wait_returns_as_soon_as_the_ack_settles_the_command(client, owner, car, service):
    cid = post(client, owner, {"type": "lock"}).json()["id"]
    service.mark_sent([cid])

    def ack_later():
        time.sleep(0.3)
        service.settle(cid, "succeeded", reason=None, result={}, acked_ms=now_ms(), car_ts_ms=now_ms(),
                       finished_ms=now_ms())

    threading.Thread(target=ack_later).start()
    started = time.monotonic()
    r = client.get(f"/api/v1/vehicles/{VIN_A}/commands/{cid}", params={"wait_s": 10}, headers=owner.headers)
    waited = time.monotonic() - started
    assert r.json()["status"] == "succeeded" and 0.25 < waited < 1.0, waited
    assert r.json()["latency"]["sent_to_ack_ms"] >= 250
    assert service.notifier.watching == 0


def test_the_caller_who_sent_a_command_is_answered_from_memory_and_nobody_else_is(
        client, owner, car, service, monkeypatch):
    cid = post(client, owner, {"type": "lock"}).json()["id"]
    settled = {"status": "succeeded", "result": {"locked": True}, "finished_ms": now_ms()}
    with service.engine.begin() as conn:  # what settle_acks does: the row, then the change to waiters
        assert repo.transition(conn, cid, "succeeded", ("queued",), result=settled["result"],
                               finished_ms=settled["finished_ms"])
    service.notifier.notify([cid], {cid: settled})
    reads = []
    real = commands_route.find_caller
    monkeypatch.setattr(commands_route, "find_caller", lambda *a, **k: reads.append(a[1:]) or real(*a, **k))
    url = f"/api/v1/vehicles/{VIN_A}/commands/{cid}"
    mine = client.get(url, params={"wait_s": 5}, headers=owner.headers).json()
    assert (mine["status"], mine["result"], mine["vin"]) == ("succeeded", {"locked": True}, VIN_A)
    assert reads == [], "the sender's own read needs no database"
    other = make_owner(client, "bo@example.com")
    assert client.get(url, headers=other.headers).status_code == 404
    lower = client.get(url.replace(VIN_A, VIN_A.lower()), headers=owner.headers)
    assert lower.json()["status"] == "succeeded"
    assert len(reads) == 1, "only the stranger was looked up (a VIN is the same car in any case)"
    resent = post(client, owner, {"type": "unlock"}).json()["id"]
    asker = (token_digest(owner.headers["Authorization"].split()[1]), VIN_A)
    assert service.notifier.recall(resent, asker, now_ms()) is not None
    service.mark_sent([resent])
    assert service.notifier.recall(resent, asker, now_ms()) is None, "sent by the relay: changed"


def test_wait_gives_up_after_wait_s_and_returns_the_current_state(client, owner, car, service):
    cid = post(client, owner, {"type": "lock"}).json()["id"]
    started = time.monotonic()
    r = client.get(f"/api/v1/vehicles/{VIN_A}/commands/{cid}", params={"wait_s": 0.6}, headers=owner.headers)
    assert r.json()["status"] == "queued" and 0.55 < time.monotonic() - started < 1.5
    assert client.get(f"/api/v1/vehicles/{VIN_A}/commands/{cid}", params={"wait_s": -1},
                      headers=owner.headers).status_code == 422


def test_an_unsent_command_expires_at_its_expiry_even_without_a_relay(client, owner, car, service):
    cid = post(client, owner, {"type": "lock", "expires_in_s": 1}).json()["id"]
    r = client.get(f"/api/v1/vehicles/{VIN_A}/commands/{cid}", params={"wait_s": 5}, headers=owner.headers)
    body = r.json()
    assert body["status"] == "expired" and 1000 <= body["latency"]["request_to_final_ms"] < 1800


def test_list_is_newest_first_with_filter_and_paging(client, owner, car, service):
    ids = [post(client, owner, {"type": t}).json()["id"] for t in ("lock", "unlock", "locate")]
    service.settle(ids[0], "failed", reason="actuation_failed", result={"detail": "jammed"},
                   finished_ms=now_ms())
    url = f"/api/v1/vehicles/{VIN_A}/commands"
    listed = client.get(url, headers=owner.headers).json()
    assert [c["id"] for c in listed["data"]] == ids[::-1] and listed["truncated"] is False
    page = client.get(url, params={"limit": 2}, headers=owner.headers).json()
    assert page["count"] == 2 and page["truncated"] is True
    failed = client.get(url, params={"status": "failed"}, headers=owner.headers).json()["data"]
    assert [(c["id"], c["reason"], c["reason_text"]) for c in failed] == \
        [(ids[0], "actuation_failed", "jammed")]
    assert client.get(url, params={"status": "done"}, headers=owner.headers).status_code == 422


# --- pre-signed envelopes and device keys ---------------------------------------------------


def register(client, owner, key: SigningKey, name="phone"):
    return client.post("/api/v1/keys", headers=owner.headers, json={"public_key": key.public, "name": name})


def signed_body(payload: bytes) -> dict:
    return {"signed": json.loads(payload)}


def test_owner_submits_a_presigned_enrol_key_which_is_relayed_unchanged(client, owner, car, service):
    device, driver = SigningKey(), SigningKey()
    assert register(client, owner, device).status_code == 201
    payload = device.signed(VIN_A, "enrol_key", {"kid": driver.kid, "pub": driver.public, "role": "driver"})
    r = post(client, owner, signed_body(payload))
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["type"], body["signer"], body["kid"], body["status"]) == \
        ("enrol_key", "device", device.kid, "queued")
    [(cid, _vin, relayed)] = service.sent
    assert cid == body["id"]
    assert (unwrap(relayed).env, unwrap(relayed).sig) == (unwrap(payload).env, unwrap(payload).sig)
    again = post(client, owner, signed_body(payload))
    assert again.json()["id"] == cid and len(service.sent) == 1, "the same envelope is the same command"


def _tamper(payload: bytes) -> dict:
    body = signed_body(payload)
    env = unwrap(payload).env.replace(b'"driver"', b'"owner"')
    body["signed"]["env"] = b64u(env)
    return body


def test_presigned_envelopes_that_cannot_be_relayed_are_400(client, owner, car, service):
    device, stranger = SigningKey(), SigningKey()
    register(client, owner, device)
    other = make_owner(client, "bo@example.com")
    register(client, other, stranger)
    enrol = {"kid": stranger.kid, "pub": stranger.public, "role": "driver"}
    cases = {
        "unknown_key": signed_body(SigningKey().signed(VIN_A, "lock")),
        "not one of your keys": signed_body(stranger.signed(VIN_A, "lock")),
        "bad_signature": _tamper(device.signed(VIN_A, "enrol_key", enrol)),
        "wrong_vin": signed_body(device.signed(VIN_B, "lock")),
        "malformed": signed_body(device.signed(VIN_A, "honk_flash", {"seconds": 0})),
        "expired": signed_body(device.signed(VIN_A, "lock", iat=now_ms() - 60_000, lifetime_ms=1_000)),
    }
    for reason, body in cases.items():
        r = post(client, owner, body)
        assert r.status_code == 400 and reason in r.json()["detail"], (reason, r.text)
    assert client.delete(f"/api/v1/keys/{device.kid}", headers=owner.headers).status_code == 204
    r = post(client, owner, signed_body(device.signed(VIN_A, "lock")))
    assert r.status_code == 400 and "key_not_valid_now" in r.json()["detail"]
    assert service.sent == []


def test_presigned_command_id_cannot_be_reused_for_another_envelope(client, owner, car, service):
    device = SigningKey()
    register(client, owner, device)
    first = post(client, owner, signed_body(device.signed(VIN_A, "lock", id_="fixed-id-0001")))
    assert first.status_code == 202
    r = post(client, owner, signed_body(device.signed(VIN_A, "unlock", id_="fixed-id-0001")))
    assert r.status_code == 409 and "already used" in r.json()["detail"]


def test_device_keys_register_list_conflict_and_revoke(client, owner, service):
    key = SigningKey()
    created = register(client, owner, key, "Ana's phone").json()
    assert (created["kid"], created["public_key"], created["revoked_at"]) == (key.kid, key.public, None)
    assert register(client, owner, key).status_code == 409
    bad = client.post("/api/v1/keys", headers=owner.headers, json={"public_key": "AAAA", "name": "x"})
    assert bad.status_code == 400 and "32-byte" in bad.json()["detail"]
    assert client.get("/api/v1/keys", headers=owner.headers).json()["count"] == 1
    other = make_owner(client, "bo@example.com")
    assert client.get("/api/v1/keys", headers=other.headers).json()["count"] == 0
    assert client.delete(f"/api/v1/keys/{key.kid}", headers=other.headers).status_code == 404
    assert client.delete(f"/api/v1/keys/{key.kid}", headers=owner.headers).status_code == 204
    assert client.get("/api/v1/keys", headers=owner.headers).json()["data"][0]["revoked_at"] is not None


def test_platform_key_file_is_private_and_stable(client, owner, app, engine):
    first = client.get("/api/v1/keys/platform", headers=owner.headers).json()
    path = app.state.settings.data_dir / "command-signing-key.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    again = CommandService.from_settings(app.state.settings, engine).platform_key
    assert (again.kid, again.public) == (first["kid"], first["public_key"]) and first["role"] == "platform"
    path.chmod(0o644)
    with pytest.raises(Exception, match="chmod 600"):
        CommandService.from_settings(app.state.settings, engine)


def test_agent_key_pin_by_owner_and_unpin(client, owner, car):
    url = f"/api/v1/vehicles/{VIN_A}/agent-key"
    assert client.get(url, headers=owner.headers).status_code == 404
    key = SigningKey()
    pinned = client.put(url, headers=owner.headers, json={"public_key": key.public}).json()
    assert (pinned["kid"], pinned["how"]) == (key.kid, "owner")
    assert client.get(url, headers=owner.headers).json()["kid"] == key.kid
    other = make_owner(client, "bo@example.com")
    assert client.get(url, headers=other.headers).status_code == 404
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert client.delete(url, headers=owner.headers).status_code == 404
