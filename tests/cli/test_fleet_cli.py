"""`chelian fleet ...` on both databases: the happy path end to end, and a reason for each refusal."""

from __future__ import annotations

import json

import pytest

from chelian.storage.db import make_engine
from chelian.storage.repositories import users, vehicles
from tests.cli.test_cli import (  # noqa: F401 - cli and _no_stray_settings are fixtures, used by name
    VIN,
    _no_stray_settings,
    add_vehicle,
    assert_clean_failure,
    cli,
)

OTHER_VIN = "WVWZZZ1JZ3W386752"


@pytest.fixture
def world(cli):  # noqa: F811
    """ana owns two cars; ops is a user with none."""
    for email in ("ana@example.com", "ops@example.com"):
        assert cli("user", "add", "--email", email, "--password", "password123").exit_code == 0
    assert add_vehicle(cli).exit_code == 0
    assert add_vehicle(cli, OTHER_VIN).exit_code == 0
    return cli


def test_create_fill_operate_list_and_empty_a_fleet(world, database_url):
    cli = world
    assert cli("fleet", "create", "north").stdout == "created fleet north\n"
    added = cli("fleet", "add-vehicle", "north", VIN.lower(), OTHER_VIN)
    assert added.exit_code == 0 and f"added {VIN}, {OTHER_VIN} to fleet north" in added.stdout
    assert "nothing to do" in cli("fleet", "add-vehicle", "north", VIN).stdout
    operate = cli("fleet", "add-operator", "north", "ops@example.com")
    assert operate.exit_code == 0 and "ops@example.com operates fleet north" in operate.stdout
    listed = cli("fleet", "list", "--json")
    assert listed.exit_code == 0
    assert json.loads(listed.stdout) == [{"name": "north", "operators": ["ops@example.com"], "vehicles": [
        {"vin": VIN, "owner": "ana@example.com"}, {"vin": OTHER_VIN, "owner": "ana@example.com"}]}]
    table = cli("fleet", "list")
    assert table.exit_code == 0 and "north" in table.stdout and VIN in table.stdout
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            ops = users.by_email(conn, "ops@example.com")
            assert [v.vin for v in vehicles.visible_to(conn, ops.id)] == sorted([VIN, OTHER_VIN])
        assert cli("fleet", "remove-vehicle", "north", VIN).exit_code == 0
        with engine.connect() as conn:
            assert [v.vin for v in vehicles.visible_to(conn, ops.id)] == [OTHER_VIN]
        assert cli("fleet", "remove-operator", "north", "ops@example.com").exit_code == 0
        with engine.connect() as conn:
            assert vehicles.visible_to(conn, ops.id) == []
    finally:
        engine.dispose()


def test_every_refusal_exits_1_with_its_reason(world):
    cli = world
    assert "no fleets yet" in cli("fleet", "list").stdout
    assert cli("fleet", "create", "north").exit_code == 0
    assert cli("fleet", "create", "south").exit_code == 0
    assert_clean_failure(cli("fleet", "create", "north"), "a fleet named north already exists")
    assert_clean_failure(cli("fleet", "add-vehicle", "west", VIN), "no fleet named west")
    assert_clean_failure(cli("fleet", "add-vehicle", "north", "1FTFW1ET0DFA00000"), "no vehicle registered")
    assert_clean_failure(cli("fleet", "add-operator", "north", "nobody@example.com"),
                         "no user with e-mail nobody@example.com")
    assert_clean_failure(cli("fleet", "remove-vehicle", "north", VIN), f"not in fleet north: {VIN}")
    assert cli("fleet", "add-vehicle", "north", VIN).exit_code == 0
    assert_clean_failure(cli("fleet", "add-vehicle", "south", OTHER_VIN, VIN), f"{VIN} (in north)")
    assert json.loads(cli("fleet", "list", "--json").stdout)[1]["vehicles"] == []  # south: all or none
    assert_clean_failure(cli("fleet", "remove-operator", "north", "ops@example.com"), "does not operate")
    missing = cli("fleet", "add-vehicle", "north")
    assert missing.exit_code == 2 and "Missing argument" in missing.output
