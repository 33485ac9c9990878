"""Managing fleets: all-or-none changes, one fleet per car, and a reason for every refusal."""

from __future__ import annotations

import pytest

from chelian.errors import ConflictError, NotFoundError, ValidationError
from chelian.services.fleet import fleets
from tests.factories import make_car, make_owner


def test_overview_lists_cars_with_their_owners_and_the_operators(engine):
    ana, ops = make_owner(engine), make_owner(engine)
    vins = sorted(make_car(engine, ana).vin for _ in range(2))
    fleets.create_fleet(engine, "north")
    fleets.create_fleet(engine, "empty")
    assert fleets.add_vehicles(engine, "north", [v.lower() for v in vins]) == vins
    assert fleets.add_vehicles(engine, "north", vins[:1]) == []  # already there: nothing to do
    assert fleets.add_operator(engine, " north ", ops.email.upper()) is True
    assert fleets.add_operator(engine, "north", ops.email) is False
    (north,) = fleets.overview(engine, operator_id=ops.id)
    assert north.fleet.name == "north" and north.operators == [ops.email]
    assert [(c.vin, c.owner_email) for c in north.cars] == [(v, ana.email) for v in vins]
    assert [f.fleet.name for f in fleets.overview(engine)] == ["empty", "north"]
    assert fleets.overview(engine, operator_id=ana.id) == []


def test_refusals_name_the_reason(engine):
    ana = make_owner(engine)
    vin = make_car(engine, ana).vin
    fleets.create_fleet(engine, "north")
    with pytest.raises(ConflictError, match="already exists"):
        fleets.create_fleet(engine, "north")
    with pytest.raises(ValidationError, match="1 to 64"):
        fleets.create_fleet(engine, "  ")
    with pytest.raises(NotFoundError, match="no fleet named south"):
        fleets.add_vehicles(engine, "south", [vin])
    with pytest.raises(NotFoundError, match="no user with e-mail nobody@example.com"):
        fleets.add_operator(engine, "north", "nobody@example.com")
    with pytest.raises(NotFoundError, match=f"not in fleet north: {vin}"):
        fleets.remove_vehicles(engine, "north", [vin])
    with pytest.raises(NotFoundError, match="does not operate"):
        fleets.remove_operator(engine, "north", ana.email)


def test_a_car_is_in_one_fleet_at_most_and_changes_are_all_or_none(engine):
    ana = make_owner(engine)
    first, second = make_car(engine, ana).vin, make_car(engine, ana).vin
    fleets.create_fleet(engine, "north")
    fleets.create_fleet(engine, "south")
    fleets.add_vehicles(engine, "north", [first])
    with pytest.raises(ConflictError, match=f"{first} \\(in north\\)"):
        fleets.add_vehicles(engine, "south", [second, first])
    with pytest.raises(NotFoundError, match="no vehicle registered with VIN 1M8GDM9AXKP042788"):
        fleets.add_vehicles(engine, "south", [second, "1M8GDM9AXKP042788"])
    assert [f.cars for f in fleets.overview(engine) if f.fleet.name == "south"] == [[]]
    fleets.remove_vehicles(engine, "north", [first])
    assert fleets.add_vehicles(engine, "south", [first, second]) == [first, second]
