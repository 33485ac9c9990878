import pytest

from chelian.errors import AuthError, ConflictError, NotFoundError, ValidationError
from chelian.security.hashing import verify_car_secret
from chelian.services.accounts.signup import log_in, sign_up, user_for_token
from chelian.services.fleet.provisioning import provision, provision_for_email, rotate_secret
from chelian.storage.repositories import vehicles

VIN = "1M8GDM9AXKP042788"


def test_sign_up_log_in_and_token(engine):
    user = sign_up(engine, "Ana@Example.com", "correct horse")
    assert user.email == "ana@example.com"
    token = log_in(engine, "ana@example.com", "correct horse", ttl_s=60)
    assert user_for_token(engine, token).id == user.id
    with pytest.raises(AuthError):
        log_in(engine, "ana@example.com", "wrong password", ttl_s=60)
    with pytest.raises(AuthError):
        user_for_token(engine, token + "x")
    with pytest.raises(ConflictError):
        sign_up(engine, "ana@example.com", "another one")
    with pytest.raises(ValidationError):
        sign_up(engine, "not-an-email", "correct horse")


def test_provision_stores_only_a_hash_and_refuses_duplicates(engine):
    owner = sign_up(engine, "o@example.com", "password1")
    vehicle, creds = provision(engine, vin=VIN.lower(), make="Ford", model="Focus", year=2019,
                               owner_id=owner.id, mqtt_url="mqtt://h:1")
    assert creds.mqtt_username == VIN and vehicle.vin == VIN
    with engine.connect() as conn:
        stored = vehicles.credential(conn, VIN)
    assert stored is not None and creds.mqtt_password not in stored.secret_hash
    assert verify_car_secret(creds.mqtt_password, stored.secret_hash)
    with pytest.raises(ConflictError):
        provision(engine, vin=VIN, make="Ford", model="Focus", year=2019, owner_id=owner.id, mqtt_url="x")
    with pytest.raises(ValidationError, match="year"):
        provision(engine, vin="WVWZZZ1JZ3W386752", make="VW", model="Golf", year=1900, owner_id=owner.id,
                  mqtt_url="x")
    with pytest.raises(NotFoundError):
        provision_for_email(engine, owner_email="nobody@example.com", vin="WVWZZZ1JZ3W386752", make="VW",
                            model="Golf", year=2003, mqtt_url="x")


def test_rotating_a_secret_revokes_the_old_one(engine):
    owner = sign_up(engine, "o@example.com", "password1")
    _, old = provision(engine, vin=VIN, make="Ford", model="Focus", year=2019, owner_id=owner.id, mqtt_url="x")
    new = rotate_secret(engine, VIN, "x")
    with engine.connect() as conn:
        live = vehicles.all_credentials(conn)
    assert [c.username for c in live] == [VIN]
    assert verify_car_secret(new.mqtt_password, live[0].secret_hash)
    assert not verify_car_secret(old.mqtt_password, live[0].secret_hash)
