"""The one access rule (`vehicles.access_clause`): cars you own plus cars in fleets you operate."""

from __future__ import annotations

from chelian.services.fleet.fleets import add_operator, add_vehicles, create_fleet, remove_vehicles
from chelian.storage.repositories import vehicles
from tests.factories import make_car, make_owner


def _world(engine):  # type: ignore[no-untyped-def]
    """ana, ben and cy own a car each; ops operates fleet "north", which holds ben's car."""
    ana, ben, cy, ops = (make_owner(engine) for _ in range(4))
    cars = {who: make_car(engine, owner).vin for who, owner in (("ana", ana), ("ben", ben), ("cy", cy))}
    create_fleet(engine, "north")
    add_vehicles(engine, "north", [cars["ben"]])
    add_operator(engine, "north", ops.email)
    return ana, ben, cy, ops, cars


def test_an_operator_uses_fleet_cars_and_nothing_else(engine):
    ana, ben, cy, ops, cars = _world(engine)
    with engine.connect() as conn:
        assert [v.vin for v in vehicles.visible_to(conn, ops.id)] == [cars["ben"]]
        assert vehicles.accessible(conn, ops.id, cars["ben"]).owner_id == ben.id  # the owner stays the owner
        assert vehicles.accessible(conn, ops.id, cars["cy"]) is None
        assert vehicles.owned(conn, ops.id, cars["ben"]) is None  # using is not owning


def test_owners_see_only_their_own_cars_fleet_or_not(engine):
    ana, ben, cy, ops, cars = _world(engine)
    with engine.connect() as conn:
        assert [v.vin for v in vehicles.visible_to(conn, ben.id)] == [cars["ben"]]
        assert [v.vin for v in vehicles.visible_to(conn, ana.id)] == [cars["ana"]]
        assert vehicles.accessible(conn, ana.id, cars["ben"]) is None


def test_an_operator_who_owns_a_car_sees_both(engine):
    ana, ben, cy, ops, cars = _world(engine)
    own = make_car(engine, ops).vin
    with engine.connect() as conn:
        assert [v.vin for v in vehicles.visible_to(conn, ops.id)] == sorted([own, cars["ben"]])


def test_removing_the_car_from_the_fleet_removes_access(engine):
    ana, ben, cy, ops, cars = _world(engine)
    remove_vehicles(engine, "north", [cars["ben"]])
    with engine.connect() as conn:
        assert vehicles.visible_to(conn, ops.id) == []
        assert vehicles.accessible(conn, ops.id, cars["ben"]) is None
        assert vehicles.accessible(conn, ben.id, cars["ben"]) is not None


def test_viewers_of_a_car_are_its_owner_and_its_fleets_operators(engine):
    ana, ben, cy, ops, cars = _world(engine)
    second = make_owner(engine)
    add_operator(engine, "north", second.email)
    with engine.connect() as conn:
        ids = vehicles.ids_by_vin(conn, list(cars.values()))
        viewers = vehicles.viewers_of(conn, list(ids.values()))
    assert viewers[ids[cars["ben"]]] == (cars["ben"], frozenset({ben.id, ops.id, second.id}))
    assert viewers[ids[cars["ana"]]] == (cars["ana"], frozenset({ana.id}))
