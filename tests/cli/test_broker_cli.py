"""`chelian broker mosquitto-config` writes files a real Mosquitto accepts."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from chelian.cli.main import app
from chelian.security.hashing import verify_car_secret

runner = CliRunner()


def test_mosquitto_config_lists_every_car_with_its_stored_hash(database_url, tmp_path):
    common = ["--database-url", database_url, "--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, ["user", "add", "--email", "o@example.com", "--password", "password1",
                               *common]).exit_code == 0
    added = runner.invoke(app, ["vehicle", "add", "--vin", "1M8GDM9AXKP042788", "--make", "Ford", "--model",
                                "Focus", "--year", "2019", "--owner", "o@example.com", "--json", *common])
    creds = json.loads(added.stdout)
    out = tmp_path / "mq"
    result = runner.invoke(app, ["broker", "mosquitto-config", "--out", str(out), "--port", "18883", *common])
    assert result.exit_code == 0, result.output
    users = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert verify_car_secret(creds["mqtt_password"], users["1M8GDM9AXKP042788"])
    assert "chelian-ingest" in (out / "platform-passwd").read_text()  # the platform listener's only user
    assert "pattern write v1/vehicles/%u/telemetry" in (out / "acl").read_text()
    conf = (out / "mosquitto.conf").read_text()
    assert "listener 18883" in conf and "allow_anonymous false" in conf and "max_queued_messages" in conf
    assert "listener 1885 127.0.0.1" in conf
    assert "CHELIAN_MQTT_URL=mqtt://127.0.0.1:1885" in result.output


def test_rotate_secret_on_an_external_broker_says_mosquitto_needs_a_reload(database_url, tmp_path):
    common = ["--database-url", database_url, "--data-dir", str(tmp_path / "data")]
    assert runner.invoke(app, ["user", "add", "--email", "o@example.com", "--password", "password1",
                               *common]).exit_code == 0
    car = ["--vin", "1M8GDM9AXKP042788", "--json"]
    assert runner.invoke(app, ["vehicle", "add", *car, "--make", "Ford", "--model", "Focus", "--year", "2019",
                               "--owner", "o@example.com", *common]).exit_code == 0
    embedded = runner.invoke(app, ["vehicle", "rotate-secret", *car, *common])
    assert embedded.exit_code == 0 and "mosquitto-config" not in embedded.output
    external = runner.invoke(app, ["vehicle", "rotate-secret", *car, "--mqtt-url", "mqtt://127.0.0.1:1885",
                                   *common])
    assert external.exit_code == 0, external.output
    assert json.loads(external.stdout)["vin"] == "1M8GDM9AXKP042788"  # stdout: still only the JSON
    assert "--reload-pid-file" in external.stderr and "mosquitto-config" in external.stderr
