"""Provisioning a car: register it to an owner and mint its own broker credentials.

The car's MQTT username is its VIN (so broker ACLs can say "only under your own VIN" with
one pattern rule) and its password is a random secret returned exactly once; only a slow
hash is stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from chelian.errors import NotFoundError, ValidationError
from chelian.security.hashing import hash_car_secret, new_secret
from chelian.storage.db import now_ms
from chelian.storage.repositories import users, vehicles
from chelian.storage.repositories.vehicles import Vehicle
from chelian.vin import normalise_vin

MIN_YEAR, MAX_YEAR = 1981, 2100  # 17-character VINs exist since model year 1981


@dataclass(frozen=True, slots=True)
class CarCredentials:
    vin: str
    mqtt_url: str
    mqtt_username: str
    mqtt_password: str

    def to_wire(self) -> dict[str, str]:
        return {"vin": self.vin, "mqtt_url": self.mqtt_url, "mqtt_username": self.mqtt_username,
                "mqtt_password": self.mqtt_password}


def provision(engine: Engine, *, vin: str, make: str, model: str, year: int, owner_id: int,
              mqtt_url: str) -> tuple[Vehicle, CarCredentials]:
    vin = normalise_vin(vin)
    make, model = make.strip(), model.strip()
    if not make or not model:
        raise ValidationError("make and model must not be empty")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError(f"year must be between {MIN_YEAR} and {MAX_YEAR}, got {year}")
    secret = new_secret()
    created = now_ms()
    with engine.begin() as conn:
        vehicle = vehicles.create(conn, vin=vin, make=make, model=model, year=year, owner_id=owner_id,
                                  created_ms=created)
        vehicles.add_credential(conn, vehicle.id, vin, hash_car_secret(secret), created)
    return vehicle, CarCredentials(vin, mqtt_url, vin, secret)


def provision_for_email(engine: Engine, *, owner_email: str, **kwargs) -> tuple[Vehicle, CarCredentials]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        owner = users.by_email(conn, owner_email.strip().lower())
    if owner is None:
        raise NotFoundError(f"no user with e-mail {owner_email}: add one with `chelian user add`")
    return provision(engine, owner_id=owner.id, **kwargs)


def rotate_secret(engine: Engine, vin: str, mqtt_url: str) -> CarCredentials:
    """Revoke a car's credentials and mint new ones (a lost or leaked secret)."""
    vin = normalise_vin(vin)
    secret = new_secret()
    with engine.begin() as conn:
        vehicle = vehicles.by_vin(conn, vin)
        if vehicle is None:
            raise NotFoundError(f"no vehicle {vin}")
        vehicles.revoke_credentials(conn, vehicle.id, now_ms())
        vehicles.add_credential(conn, vehicle.id, vin, hash_car_secret(secret), now_ms())
    return CarCredentials(vin, mqtt_url, vin, secret)
