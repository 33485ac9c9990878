"""`chelian agent --config FILE`: a real car's configuration, validated up front; a recorded
CAN drive replayed through the agent into the cloud (both deployment shapes); a signed lock
from the API executed by the agent's hook actuator."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from chelian.agent.config import AgentConfig
from chelian.cli.agent import serve
from chelian.cli.main import app
from chelian.errors import ConfigError
from chelian.metrics import Metrics
from chelian.runtime import build_ingest
from chelian.signals import Catalog
from chelian.storage.repositories import vehicles
from chelian.storage.tables import latest_state
from tests.agent.helpers import until
from tests.agent.test_can_decoder import _drive, write_candump
from tests.factories import new_vin
from tests.fixtures_brokers import wait_until
from tests.services.commands import test_end_to_end as e2e

relay, api, owner_headers = e2e.relay, e2e.api, e2e.owner_headers  # the command tests' fixtures

VIN = "1M8GDM9AXKP042788"


def write_config(path, **fields) -> None:
    source = fields.pop("source", {"kind": "replay", "log": "drive.log", "mapping": "toyota_tss2",
                                   "dbc": "toyota_nodsu_pt_generated", "realtime": False})
    hooks = fields.pop("hooks", None)
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in fields.items()]
    lines.append("[source]")
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}".replace("'", '"')
              for k, v in source.items()]
    if hooks is not None:
        lines += ["[actuators]", "hook_timeout_s = 5", "[actuators.hooks]"]
        lines += [f"{name} = {json.dumps(argv)}" for name, argv in hooks.items()]
    path.write_text("\n".join(lines) + "\n")


def base(tmp_path, **overrides):
    fields = {"vin": VIN, "mqtt_url": "mqtt://127.0.0.1:1883", "password": "s3cret",
              "data_dir": str(tmp_path / "car")}
    fields.update(overrides)
    return fields


def test_a_valid_config_gives_link_and_policy(tmp_path):
    path = tmp_path / "agent.toml"
    write_config(path, **base(tmp_path), rate_hz=2.0)
    path.write_text(path.read_text() + '\n[policy."Vehicle.Speed"]\ndeadband = 5.0\n')
    cfg = AgentConfig.load(path)
    link = cfg.link()
    assert (link.host, link.port, link.username, link.password) == ("127.0.0.1", 1883, VIN, "s3cret")
    assert cfg.policy_table()["Vehicle.Speed"].deadband == 5.0
    assert cfg.queue_path == tmp_path / "car" / "queue.db"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"vin": "1M8GDM9AXKP042789"}, "check digit"),
    ({"mqtt_url": "http://x"}, "mqtt://host:port"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"source": {"kind": "bluetooth"}}, "source"),
    ({"colour": "red"}, "colour"),
    ({"hooks": {"lock": ["/nonexistent/car-lock"]}}, "actuators.hooks.lock: /nonexistent/car-lock is not an "
                                                     "executable file"),
    ({"hooks": {"open_sunroof": ["/bin/true"]}}, "no command 'open_sunroof' can have a hook"),
    ({"hooks": {"lock": []}}, "give the program"),
])
def test_bad_configs_are_one_line_errors(tmp_path, overrides, message):
    path = tmp_path / "agent.toml"
    write_config(path, **base(tmp_path, **overrides))
    with pytest.raises(ConfigError, match=message):
        AgentConfig.load(path)
    result = CliRunner().invoke(app, ["agent", "--config", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_replayed_can_drive_reaches_the_cloud(broker_stack, tmp_path, request):
    from cantools.database import load_file

    from chelian.agent.can import opendbc_dbc

    creds = broker_stack.add_car(new_vin())
    log = tmp_path / "drive.log"
    write_candump(_drive(load_file(opendbc_dbc("toyota_nodsu_pt_generated"), strict=False)), log)
    path = tmp_path / "agent.toml"
    host, port = broker_stack.host, broker_stack.port
    write_config(path, **base(tmp_path, vin=creds.vin, password=creds.mqtt_password,
                              mqtt_url=f"mqtt://{host}:{port}", mqtt_version=5 if broker_stack.mqtt5 else 4),
                 source={"kind": "replay", "log": str(log), "mapping": "toyota_tss2",
                         "dbc": "toyota_nodsu_pt_generated", "realtime": False})
    cfg = AgentConfig.load(path)
    ingest = build_ingest(broker_stack.settings, broker_stack.engine, Catalog.builtin(), Metrics(),
                          client_id=f"agent-cli-{os.getpid()}-{request.node.name[-16:]}").start()

    def speed():
        with broker_stack.engine.connect() as conn:
            vid = vehicles.by_vin(conn, creds.vin).id
            return conn.execute(select(latest_state.c.value_num).where(
                latest_state.c.vehicle_id == vid, latest_state.c.path == "Vehicle.Speed")).scalar()

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(serve(cfg, stop))
        assert await until(lambda: speed() == pytest.approx(42.0), timeout=20)
        stop.set()
        return await task

    try:
        car = asyncio.run(scenario())
    finally:
        ingest.stop()
    assert car.delivered >= 1 and len(car.outbox) == 0
    assert (tmp_path / "car" / "queue.db").exists()
    assert wait_until(lambda: speed() == pytest.approx(42.0))


def test_hooks_are_read_from_the_config(tmp_path):
    path = tmp_path / "agent.toml"
    write_config(path, **base(tmp_path, hooks={"lock": ["true"], "honk_flash": ["/bin/echo", "beep"]}))
    cfg = AgentConfig.load(path)
    assert cfg.actuators.hooks == {"lock": ["true"], "honk_flash": ["/bin/echo", "beep"]}
    assert cfg.actuators.hook_timeout_s == 5 and cfg.actuators.can is True


def test_a_signed_lock_from_the_api_runs_the_agents_hook(broker_stack, relay, api, owner_headers, tmp_path):
    """The whole path on a real car's agent: API -> relay -> broker -> `serve` (replayed CAN drive,
    hook actuators) -> the hook program -> signed ack -> API; an unwired command fails with why."""
    from cantools.database import load_file

    from chelian.agent.can import opendbc_dbc
    from tests.services.commands.test_end_to_end import send, wait

    creds = broker_stack.add_car(new_vin())
    log = tmp_path / "drive.log"
    write_candump(_drive(load_file(opendbc_dbc("toyota_nodsu_pt_generated"), strict=False)), log)
    marker = tmp_path / "locked-by-hook"
    hook = tmp_path / "car-lock"
    hook.write_text(f'#!/bin/sh\necho "$CHELIAN_VIN" > {marker}\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    path = tmp_path / "agent.toml"
    write_config(path, **base(tmp_path, vin=creds.vin, password=creds.mqtt_password,
                              mqtt_url=f"mqtt://{broker_stack.host}:{broker_stack.port}",
                              mqtt_version=5 if broker_stack.mqtt5 else 4,
                              platform_key=relay.service.platform_key.public),
                 source={"kind": "replay", "log": str(log), "mapping": "toyota_tss2",
                         "dbc": "toyota_nodsu_pt_generated", "realtime": False},
                 hooks={"lock": [str(hook)]})
    cfg = AgentConfig.load(path)

    async def scenario():
        stop = asyncio.Event()
        task = asyncio.create_task(serve(cfg, stop))
        try:
            assert await until(lambda: creds.vin in relay.online, timeout=15)
            lock = await asyncio.to_thread(send, api, owner_headers, creds.vin, {"type": "lock"})
            locked = await asyncio.to_thread(wait, api, owner_headers, creds.vin, lock["id"], 10)
            unlock = await asyncio.to_thread(send, api, owner_headers, creds.vin, {"type": "unlock"})
            unlocked = await asyncio.to_thread(wait, api, owner_headers, creds.vin, unlock["id"], 10)
            return locked, unlocked
        finally:
            stop.set()
            await task

    locked, unlocked = asyncio.run(scenario())
    assert (locked["status"], locked["reason"]) == ("succeeded", None), locked
    assert marker.read_text() == f"{creds.vin}\n", "the hook ran, with the car's VIN"
    assert (unlocked["status"], unlocked["reason"]) == ("failed", "actuation_failed"), unlocked
    assert "unlock is not wired on this car" in unlocked["result"]["detail"]
