"""Envelopes: what is signed is exactly what is verified, and nothing unverified gets parsed."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from chelian.services.commands.catalog import BAD_SIGNATURE, MALFORMED
from chelian.services.commands.envelope import (
    Ack,
    Command,
    EnvelopeError,
    b64u,
    canonical,
    key_id,
    open_sealed,
    seal,
    unb64u,
    unwrap,
)
from tests.services.commands.signing import SigningKey

VIN = "1M8GDM9AXKP042788"


def test_sealed_command_round_trips_and_hash_names_the_exact_bytes():
    key = SigningKey()
    command = key.command(VIN, "honk_flash", {"seconds": 5.0})
    payload = key.sign(command)
    sealed = unwrap(payload)
    assert sealed.kid == key.kid and sealed.id == command.id
    assert sealed.env == canonical(command.body())
    assert Command.from_body(open_sealed(sealed, key.private.public_key())) == command
    assert key.sign(command) == payload, "Ed25519 is deterministic and the body canonical"


def test_any_changed_byte_of_the_body_breaks_the_signature():
    key = SigningKey()
    sealed = unwrap(key.signed(VIN, "lock"))
    outer = json.loads(sealed.wire())
    tampered = sealed.env.replace(b'"lock"', b'"unlock"')
    outer["env"] = b64u(tampered)
    with pytest.raises(EnvelopeError) as err:
        open_sealed(unwrap(canonical(outer)), key.private.public_key())
    assert err.value.reason == BAD_SIGNATURE


def test_signature_from_another_key_is_bad():
    sealed = unwrap(SigningKey().signed(VIN, "lock"))
    with pytest.raises(EnvelopeError) as err:
        open_sealed(sealed, Ed25519PrivateKey.generate().public_key())
    assert err.value.reason == BAD_SIGNATURE


def test_garbage_bytes_under_a_valid_signature_are_malformed_not_crashes():
    private = Ed25519PrivateKey.generate()
    for body in (b"\xff\xfe", b"[1,2]", b'{"kind":"command"}'):
        sealed = unwrap(canonical({"v": 1, "kid": key_id(private), "env": b64u(body),
                                   "sig": b64u(private.sign(body))}))
        with pytest.raises(EnvelopeError) as err:
            Command.from_body(open_sealed(sealed, private.public_key()))
        assert err.value.reason == MALFORMED


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"v": 2, "kid": "k", "env": "", "sig": ""}', b'{"v": 1, "env": "", "sig": ""}',
    b'{"v": 1, "kid": "k", "env": "a+b/", "sig": ""}', b'{"v": 1, "kid": "k", "env": "abc=", "sig": ""}',
])
def test_outer_layer_shape_errors_are_malformed(payload):
    with pytest.raises(EnvelopeError) as err:
        unwrap(payload)
    assert err.value.reason == MALFORMED


@pytest.mark.parametrize("change", [{"ctr": 0}, {"ctr": True}, {"exp": 1}, {"iat": "now"}, {"id": "x"},
                                    {"exp": 10 + 24 * 3600 * 1000 + 1, "iat": 10}])
def test_command_body_rules(change):
    body = SigningKey().command(VIN, "lock").body() | change
    with pytest.raises(EnvelopeError):
        Command.from_body(body)


def test_ack_round_trip_and_base64url_is_strict():
    ack = Ack("c" * 32, VIN, "h", "succeeded", None, {"lat": 1.0}, 123)
    assert Ack.from_body(ack.body()) == ack
    with pytest.raises(EnvelopeError):
        Ack.from_body(ack.body() | {"status": "done"})
    assert unb64u(b64u(b"\x00\xff" * 7)) == b"\x00\xff" * 7
    with pytest.raises(EnvelopeError):
        unb64u("AA==")


def test_acks_carry_the_signers_public_key_when_asked():
    private = Ed25519PrivateKey.generate()
    sealed = unwrap(seal(private, {"kind": "agent_key"}, with_pub=True).wire())
    assert sealed.pub == private.public_key().public_bytes_raw() and sealed.kid == key_id(sealed.pub)
