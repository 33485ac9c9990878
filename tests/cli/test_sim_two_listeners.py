"""`chelian sim` against a production Mosquitto: its cars connect to the car listener
(CHELIAN_PUBLIC_MQTT_URL), not to the platform listener that CHELIAN_MQTT_URL names for
ingest and the relay, where no car can log in."""

from __future__ import annotations

import json
import time
import types

import pytest
from typer.testing import CliRunner

from chelian.cli import sim as sim_command
from chelian.cli.main import app
from chelian.link.codec import decode_status
from chelian.services.accounts.signup import sign_up
from chelian.sim.models import sim_vin


@pytest.mark.production
def test_sim_cars_drive_through_the_car_listener(mosquitto_stack, tmp_path, monkeypatch):
    settings = mosquitto_stack.settings
    assert settings.car_broker_host_port != settings.broker_host_port  # two listeners
    owner = "driver@sim.example"
    sign_up(mosquitto_stack.engine, owner, "password1")
    vins = {sim_vin(owner, i) for i in range(2)}
    watcher = mosquitto_stack.service_client()
    watcher.subscribe("v1/vehicles/+/status")
    online: set[str] = set()

    def sleep(_seconds: float) -> None:
        """The CLI's report loop: let Mosquitto learn the fleet's fresh secrets (what
        `chelian broker mosquitto-config --reload-pid-file` does), watch the cars come
        online, then stop the CLI as Ctrl-C would."""
        mosquitto_stack.sync()
        deadline = time.monotonic() + 20
        while online != vins and time.monotonic() < deadline:
            msg = watcher.expect(timeout=0.5)
            if msg is not None and msg.payload and decode_status(msg.topic.split("/")[2], msg.payload).online:
                online.add(msg.topic.split("/")[2])
        raise KeyboardInterrupt

    monkeypatch.setattr(sim_command, "CONNECT_GRACE_S", 0.2)
    monkeypatch.setattr(sim_command, "time", types.SimpleNamespace(sleep=sleep))
    monkeypatch.setenv("CHELIAN_PUBLIC_MQTT_URL", settings.car_mqtt_url)
    result = CliRunner().invoke(app, ["sim", "--cars", "2", "--owner", owner, "--rate-hz", "2",
                                      "--database-url", settings.effective_database_url,
                                      "--mqtt-url", settings.mqtt_url, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    host, port = settings.car_broker_host_port
    assert f"against mqtt://{host}:{port}" in result.stdout
    assert "lets the simulated cars in" in result.stderr and "--reload-pid-file" in result.stderr
    assert online == vins, json.dumps(sorted(online))
