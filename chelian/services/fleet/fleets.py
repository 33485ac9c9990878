"""Fleets: named groups of cars run by operators, who may read and command every car in them.

Why fleets rather than sharing cars one by one: a company's cars are registered to whoever
legally owns them (a leasing firm, each driver), yet one dispatcher must see and lock all of
them. A fleet gathers the cars; its operators get the same per-car access as the owner
(see `vehicles.access_clause`), while ownership itself never moves: the owner keeps the car,
its notifications and the power to re-pin its key.

A car is in at most one fleet, so "who runs this car" has one answer. Fleets are managed by
the platform's administrator (`chelian fleet ...`); the API only shows operators their fleets.

Every function takes names (fleet name, VIN, e-mail) as people type them and raises
NotFoundError/ConflictError/ValidationError with a reason, so the CLI and the API can print it.

Example:
    create_fleet(engine, "depot-north")
    add_vehicles(engine, "depot-north", ["1M8GDM9AXKP042788"])
    add_operator(engine, "depot-north", "dispatch@example.com")
    [f.fleet.name for f in overview(engine, operator_id=dispatcher.id)]   # ["depot-north"]
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.services.accounts.signup import normalise_email
from chelian.storage.db import now_ms
from chelian.storage.repositories import fleets as repo
from chelian.storage.repositories import users, vehicles
from chelian.storage.repositories.fleets import Fleet, FleetCar
from chelian.storage.repositories.users import User
from chelian.storage.repositories.vehicles import Vehicle

MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class FleetOverview:
    fleet: Fleet
    cars: list[FleetCar]
    operators: list[str]
    """E-mails."""


def create_fleet(engine: Engine, name: str) -> Fleet:
    name = _valid_name(name)
    with engine.begin() as conn:
        return repo.create(conn, name, now_ms())


def add_vehicles(engine: Engine, fleet_name: str, vins: list[str]) -> list[str]:
    """Put the cars in the fleet, all or none; returns the VINs that were not in it already."""
    with engine.begin() as conn:
        fleet = _fleet(conn, fleet_name)
        cars = _cars(conn, vins)
        current = repo.fleet_names_of(conn, [c.id for c in cars])
        elsewhere = [f"{c.vin} (in {current[c.id]})" for c in cars
                     if current.get(c.id, fleet.name) != fleet.name]
        if elsewhere:
            raise ConflictError(f"a vehicle is in one fleet at most; remove it from its fleet first: "
                                f"{', '.join(elsewhere)}")
        added = [c for c in cars if c.id not in current]
        for car in added:
            repo.add_vehicle(conn, fleet.id, car.id, now_ms())
    return [c.vin for c in added]


def remove_vehicles(engine: Engine, fleet_name: str, vins: list[str]) -> None:
    """Take the cars out of the fleet, all or none: its operators lose them (the API at once, the
    live map within `push.ACCESS_CACHE_S`)."""
    with engine.begin() as conn:
        fleet = _fleet(conn, fleet_name)
        cars = _cars(conn, vins)
        current = repo.fleet_names_of(conn, [c.id for c in cars])
        outside = [c.vin for c in cars if current.get(c.id) != fleet.name]
        if outside:
            raise NotFoundError(f"not in fleet {fleet.name}: {', '.join(outside)}")
        for car in cars:
            repo.remove_vehicle(conn, fleet.id, car.id)


def add_operator(engine: Engine, fleet_name: str, email: str) -> bool:
    """Let the user read and command every car of the fleet; False if they already could."""
    with engine.begin() as conn:
        return repo.add_operator(conn, _fleet(conn, fleet_name).id, _user(conn, email).id, now_ms())


def remove_operator(engine: Engine, fleet_name: str, email: str) -> None:
    with engine.begin() as conn:
        fleet, user = _fleet(conn, fleet_name), _user(conn, email)
        if not repo.remove_operator(conn, fleet.id, user.id):
            raise NotFoundError(f"{user.email} does not operate fleet {fleet.name}")


def overview(engine: Engine, operator_id: int | None = None) -> list[FleetOverview]:
    """Every fleet (the administrator's view), or only those `operator_id` operates, by name."""
    with engine.connect() as conn:
        found = repo.every(conn) if operator_id is None else repo.operated_by(conn, operator_id)
        ids = [f.id for f in found]
        cars, operators = repo.cars_in(conn, ids), repo.operators_of(conn, ids)
    return [FleetOverview(f, cars[f.id], operators[f.id]) for f in found]


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(f"a fleet name must be 1 to {MAX_NAME} characters, got {name!r}")
    return name


def _fleet(conn: Connection, name: str) -> Fleet:
    fleet = repo.by_name(conn, name.strip())
    if fleet is None:
        raise NotFoundError(f"no fleet named {name.strip()} (see `chelian fleet list`)")
    return fleet


def _cars(conn: Connection, vins: list[str]) -> list[Vehicle]:
    wanted = list(dict.fromkeys(v.strip().upper() for v in vins))
    if not wanted:
        raise ValidationError("name at least one VIN")
    cars = {vin: vehicles.by_vin(conn, vin) for vin in wanted}
    unknown = [vin for vin, car in cars.items() if car is None]
    if unknown:
        raise NotFoundError(f"no vehicle registered with VIN {', '.join(unknown)}")
    return [car for car in cars.values() if car is not None]


def _user(conn: Connection, email: str) -> User:
    user = users.by_email(conn, normalise_email(email))
    if user is None:
        raise NotFoundError(f"no user with e-mail {email}: add one with `chelian user add`")
    return user
