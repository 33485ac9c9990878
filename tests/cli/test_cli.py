"""The `chelian` command line, driven through typer's CliRunner on both databases."""

from __future__ import annotations

import json
import os
import socket
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from chelian.cli import sim as sim_command
from chelian.cli.main import app
from chelian.security.hashing import verify_car_secret
from chelian.sim.models import sim_vin
from chelian.storage.db import is_migrated, make_engine
from chelian.storage.repositories import vehicles

VIN = "1M8GDM9AXKP042788"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch, tmp_path):
    """Commands under test must never read the developer's CHELIAN_* settings or ~/.chelian."""
    for key in [k for k in os.environ if k.startswith("CHELIAN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CHELIAN_DATA_DIR", str(tmp_path / "env-home"))


@pytest.fixture
def cli(database_url, tmp_path):
    """Run `chelian ARGS --database-url <the test database> --data-dir <tmp>`."""

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [*args, "--database-url", database_url, "--data-dir", str(tmp_path)])

    return run


def assert_clean_failure(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    for fragment in fragments:
        assert fragment in result.stderr


def add_vehicle(cli, vin: str = VIN, *extra: str):  # type: ignore[no-untyped-def]
    return cli("vehicle", "add", "--vin", vin, "--make", "Ford", "--model", "Focus", "--year", "2019",
               "--owner", "ana@example.com", *extra)


def test_help_explains_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("user", "vehicle", "fleet", "db", "sim"):
        assert f" {command} " in result.output
    groups = {"user": ["add"], "vehicle": ["add", "list", "rotate-secret"], "db": ["upgrade"],
              "fleet": ["create", "add-vehicle", "remove-vehicle", "add-operator", "remove-operator", "list"]}
    for group, commands in groups.items():
        group_help = runner.invoke(app, [group, "--help"])
        assert group_help.exit_code == 0
        for command in commands:
            sub = runner.invoke(app, [group, command, "--help"])
            assert sub.exit_code == 0 and "--data-dir" in sub.output and "--database-url" in sub.output
            assert command in group_help.output
    sim_help = runner.invoke(app, ["sim", "--help"])
    assert sim_help.exit_code == 0 and "--cars" in sim_help.output and "--mqtt-url" in sim_help.output


def test_user_add_then_duplicate_is_refused(cli):
    first = cli("user", "add", "--email", "Ana@Example.com", "--password", "correct horse")
    assert first.exit_code == 0, first.output
    assert "ana@example.com" in first.stdout
    assert_clean_failure(cli("user", "add", "--email", "ana@example.com", "--password", "other one!"),
                         "already exists")
    assert_clean_failure(cli("user", "add", "--email", "bob@example.com", "--password", "short"),
                         "8 characters")


def test_vehicle_add_json_prints_the_credentials_once(cli, database_url):
    cli("user", "add", "--email", "ana@example.com", "--password", "correct horse")
    result = add_vehicle(cli, VIN.lower(), "--json")
    assert result.exit_code == 0, result.output
    creds = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert set(creds) == {"vin", "mqtt_url", "mqtt_username", "mqtt_password"}
    assert creds["vin"] == creds["mqtt_username"] == VIN
    assert creds["mqtt_url"].startswith("mqtt://")
    assert result.output.count(creds["mqtt_password"]) == 1
    assert "shown only once" in result.stderr
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = vehicles.credential(conn, VIN)
    engine.dispose()
    assert stored is not None and verify_car_secret(creds["mqtt_password"], stored.secret_hash)


def test_vehicle_add_table_rotate_and_list(cli):
    cli("user", "add", "--email", "ana@example.com", "--password", "correct horse")
    table = add_vehicle(cli)
    assert table.exit_code == 0, table.output
    assert VIN in table.stdout and "mqtt_password" in table.stdout and "shown only once" in table.stderr
    rotated = cli("vehicle", "rotate-secret", "--vin", VIN, "--json")
    assert rotated.exit_code == 0, rotated.output
    new_password = json.loads(rotated.stdout)["mqtt_password"]
    assert new_password not in table.stdout
    listed = cli("vehicle", "list", "--owner", "ana@example.com", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [{"vin": VIN, "make": "Ford", "model": "Focus", "year": 2019,
                                          "status": "offline", "status_at": None}]
    human = cli("vehicle", "list", "--owner", "ana@example.com")
    assert human.exit_code == 0 and VIN in human.stdout and "offline" in human.stdout


def test_vehicle_add_refusals_are_one_red_line(cli):
    assert_clean_failure(add_vehicle(cli), "no user with e-mail ana@example.com")
    cli("user", "add", "--email", "ana@example.com", "--password", "correct horse")
    assert_clean_failure(add_vehicle(cli, VIN[:-1] + "9"), "check digit")
    assert_clean_failure(add_vehicle(cli, "SHORT"), "17 characters")
    assert add_vehicle(cli).exit_code == 0
    assert_clean_failure(add_vehicle(cli), "already registered")
    assert_clean_failure(cli("vehicle", "list", "--owner", "nobody@example.com"), "no user")


def test_db_upgrade_is_idempotent(cli):
    for _ in range(2):
        result = cli("db", "upgrade")
        assert result.exit_code == 0, result.output
        assert "is at revision" in result.stdout


def test_a_new_database_is_migrated_on_first_use(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'c.db'}"
    result = runner.invoke(app, ["user", "add", "--email", "a@example.com", "--password", "password1",
                                 "--database-url", url])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert is_migrated(engine)
    engine.dispose()


def test_options_before_the_command_and_from_a_config_file(tmp_path):
    data_dir = tmp_path / "before"
    result = runner.invoke(app, ["--data-dir", str(data_dir), "user", "add", "--email", "a@example.com",
                                 "--password", "password1"])
    assert result.exit_code == 0, result.output
    assert (data_dir / "chelian.db").exists()

    config = tmp_path / "chelian.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "from-toml.db"}"\n')
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-toml.db").exists()


def test_configuration_problems_are_one_red_line(tmp_path):
    assert_clean_failure(runner.invoke(app, ["db", "upgrade", "--config", str(tmp_path / "missing.toml")]),
                         "cannot read config file")
    assert_clean_failure(runner.invoke(app, ["db", "upgrade", "--database-url", "mysql://x/y"]),
                         "unsupported database")
    unreachable = runner.invoke(app, ["db", "upgrade", "--database-url",
                                      "postgresql://chelian:hunter2@127.0.0.1:9/nowhere"])
    assert_clean_failure(unreachable, "cannot open database")
    assert "hunter2" not in unreachable.output


def test_sim_registers_the_fleet_and_drives_until_interrupted(cli, monkeypatch):
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker on 127.0.0.1:1883: {exc}")

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sim_command.time, "sleep", interrupt)
    owner = f"{uuid.uuid4().hex[:12]}@sim-cli.example"  # client id = VIN, and the broker is shared
    cli("user", "add", "--email", owner, "--password", "password1")
    args = ("sim", "--cars", "2", "--owner", owner, "--rate-hz", "5", "--mqtt-url", "mqtt://127.0.0.1:1883")
    for _ in range(2):  # the second run finds the same cars instead of registering new ones
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "driving 2 car(s)" in result.stdout and "stopping" in result.stdout
        assert "only 0 of 2" not in result.stderr
    listed = json.loads(cli("vehicle", "list", "--owner", owner, "--json").stdout)
    vins = sorted(sim_vin(owner, i) for i in range(2))
    assert sorted(v["vin"] for v in listed) == vins
    cleaner = mqtt.Client(CallbackAPIVersion.VERSION2)
    cleaner.connect("127.0.0.1", 1883)
    cleaner.loop_start()
    for vin in vins:  # leave no retained status behind
        cleaner.publish(f"v1/vehicles/{vin}/status", b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.disconnect()
    cleaner.loop_stop()
