"""Registering the simulator's cars to an owner, idempotently.

The i-th simulated car of an owner always has the same VIN (see `chelian.sim.models`), so
running the simulator again finds the cars it registered last time. Their secrets were shown
once and are gone, so each run re-mints them (`rotate_secret`): the old ones are revoked,
which is right, because the only holder of those secrets was the previous simulator run.

Example:
    creds = provision_fleet(engine, "ana@example.com", 3, "mqtt://127.0.0.1:1884")
    [c.vin for c in creds]   # the same three VINs on every run
"""

from __future__ import annotations

from sqlalchemy import Engine

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.services.accounts.signup import normalise_email
from chelian.services.fleet.provisioning import CarCredentials, provision, rotate_secret
from chelian.sim.models import sim_car
from chelian.storage.repositories import users, vehicles
from chelian.storage.repositories.users import User
from chelian.storage.repositories.vehicles import Vehicle

MAX_SIM_CARS = 20_000
"""A sanity bound, not a performance limit: bench/sim.py says how many cars this machine
sustains at 1 Hz (more than 1 000 on 2 cores); beyond 20 000 one process's connect storm and
file descriptors are the problem, so run several simulators instead."""


def _owner(engine: Engine, owner_email: str) -> User:
    email = normalise_email(owner_email)
    with engine.connect() as conn:
        owner = users.by_email(conn, email)
    if owner is None:
        raise NotFoundError(f"no user with e-mail {email}: add one with `chelian user add`")
    return owner


def provision_fleet(engine: Engine, owner_email: str, n: int, mqtt_url: str) -> list[CarCredentials]:
    """Credentials for the owner's first `n` simulated cars, registering the ones that are new."""
    if not 1 <= n <= MAX_SIM_CARS:
        raise ValidationError(f"a simulated fleet has 1 to {MAX_SIM_CARS} cars, not {n} "
                              "(run several simulators, each with its own owner, for more)")
    owner = _owner(engine, owner_email)
    credentials = []
    for index in range(n):
        car = sim_car(owner.email, index)
        with engine.connect() as conn:
            existing = vehicles.by_vin(conn, car.vin)
        if existing is None:
            _, creds = provision(engine, vin=car.vin, make=car.model.make, model=car.model.model,
                                 year=car.year, owner_id=owner.id, mqtt_url=mqtt_url)
        elif existing.owner_id == owner.id:
            creds = rotate_secret(engine, car.vin, mqtt_url)
        else:
            raise ConflictError(f"simulated VIN {car.vin} is registered to another owner")
        credentials.append(creds)
    return credentials


def vehicles_of(engine: Engine, owner_email: str) -> list[Vehicle]:
    """An owner's vehicles by VIN (what `chelian vehicle list` shows).

    Lives here until the fleet services grow a listing module of their own.
    """
    owner = _owner(engine, owner_email)
    with engine.connect() as conn:
        return vehicles.for_owner(conn, owner.id)
