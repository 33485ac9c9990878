"""`chelian agent --config FILE`: a real car's configuration, validated up front; a recorded
CAN drive replayed through the agent into the cloud (both deployment shapes)."""

from __future__ import annotations

import asyncio
import os

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

VIN = "1M8GDM9AXKP042788"


def write_config(path, **fields) -> None:
    source = fields.pop("source", {"kind": "replay", "log": "drive.log", "mapping": "toyota_tss2",
                                   "dbc": "toyota_nodsu_pt_generated", "realtime": False})
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in fields.items()]
    lines.append("[source]")
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}".replace("'", '"')
              for k, v in source.items()]
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
