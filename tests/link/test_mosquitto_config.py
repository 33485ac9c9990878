"""The generated Mosquitto files: straight from the database, in Mosquitto's own formats.

That Mosquitto accepts them and enforces them (two listeners, client id = VIN on the car
listener) is tested end to end in test_broker_acl.py: the `mosquitto` stack runs on exactly
these files.
"""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from chelian.config import Settings
from chelian.errors import ChelianError, ConfigError
from chelian.link.broker import packet_limit
from chelian.link.mosquitto import (
    DEFAULT_PERSISTENT_CLIENT_EXPIRATION,
    MosquittoFiles,
    car_acl_text,
    conf_text,
    listener_url,
    mosquitto_config_from_settings,
    platform_acl_text,
    reload_mosquitto,
    sync_mosquitto,
    write_mosquitto_config,
)
from chelian.link.service_account import ServiceAccount
from chelian.security.hashing import verify_car_secret
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import provision, rotate_secret
from chelian.storage.db import make_engine, upgrade
from chelian.storage.repositories import vehicles

VIN_A, VIN_B = "1M8GDM9AXKP042788", "WVWZZZ1JZ3W386752"
ACCOUNT = ServiceAccount("chelian-ingest", "service-secret")


def _cars(engine, *vins):  # type: ignore[no-untyped-def]
    owner = sign_up(engine, "o@example.com", "password1")
    return [provision(engine, vin=v, make="M", model="X", year=2020, owner_id=owner.id, mqtt_url="x")[1]
            for v in vins]


def _entries(path):  # type: ignore[no-untyped-def]
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def test_car_password_file_copies_database_hashes_and_the_platform_one_holds_the_service_account(
        engine, tmp_path) -> None:
    _cars(engine, VIN_A, VIN_B)
    files = write_mosquitto_config(engine, tmp_path, port=18830, platform_port=18840, service_account=ACCOUNT)
    entries = _entries(files.password_file)
    with engine.connect() as conn:
        stored = {c.username: c.secret_hash for c in vehicles.all_credentials(conn)}
    assert entries == stored  # cars only: the service account cannot log in on the car listener
    platform = _entries(files.platform_password_file)
    assert list(platform) == [ACCOUNT.username]  # and no car on the platform listener
    assert platform[ACCOUNT.username].startswith("$7$")
    assert verify_car_secret(ACCOUNT.password, platform[ACCOUNT.username])
    assert not verify_car_secret("other", platform[ACCOUNT.username])
    for path in (files.platform_password_file, files.platform_acl_file, files.acl_file):
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(files.password_file.stat().st_mode)
    mode = stat.S_IMODE(files.password_file.stat().st_mode)
    if os.geteuid() != 0:
        assert mode == 0o600
    else:  # root: readable by the group of the user Mosquitto drops to, when it exists
        try:
            broker_gid = pwd.getpwnam("mosquitto").pw_gid
        except KeyError:
            assert mode == 0o600
        else:
            assert (mode, files.password_file.stat().st_gid) == (0o640, broker_gid)
            assert files.persistence_dir.stat().st_gid == broker_gid


def test_sync_follows_provisioning_and_revocation(engine, tmp_path) -> None:
    (car_a,) = _cars(engine, VIN_A)
    files = write_mosquitto_config(engine, tmp_path, port=18830, service_account=ACCOUNT, broker_user=None)
    before = _entries(files.password_file)[VIN_A]
    files.password_file.chmod(0o640)  # an operator's choice survives the rewrite
    new = rotate_secret(engine, VIN_A, "x")
    assert sync_mosquitto(engine, files, ACCOUNT) == 1
    after = _entries(files.password_file)
    assert after[VIN_A] != before
    assert verify_car_secret(new.mqtt_password, after[VIN_A])
    assert not verify_car_secret(car_a.mqtt_password, after[VIN_A])
    assert not any("#" in name for name in after)  # the retired username is not there
    assert stat.S_IMODE(files.password_file.stat().st_mode) == 0o640
    assert list(_entries(files.platform_password_file)) == [ACCOUNT.username]
    assert not list(tmp_path.glob(".*.tmp"))


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_acls_give_each_car_only_its_own_topics_and_the_service_everything_below_the_root() -> None:
    assert _rules(car_acl_text()) == [
        "pattern write v1/vehicles/%u/telemetry",
        "pattern write v1/vehicles/%u/events",
        "pattern write v1/vehicles/%u/status",
        "pattern write v1/vehicles/%u/acks",
        "pattern read v1/vehicles/%u/commands",
    ]
    assert _rules(platform_acl_text("chelian-ingest")) == ["user chelian-ingest",
                                                           "topic readwrite v1/vehicles/#"]
    with pytest.raises(ConfigError):
        platform_acl_text("bad name")


def _sections(conf: str) -> list[dict[str, str]]:
    """The global options, then one dict per listener (in file order)."""
    sections: list[dict[str, str]] = [{}]
    for line in conf.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            if key == "listener":
                sections.append({})
            assert key not in sections[-1], f"{key} twice in one section"
            sections[-1][key] = value
    return sections


def test_conf_has_a_car_and_a_platform_listener_and_raises_debians_queue_limits(engine, tmp_path) -> None:
    files = write_mosquitto_config(engine, tmp_path / "mq", port=18830, service_account=ACCOUNT,
                                   bind_address="0.0.0.0", platform_port=18840, max_payload_bytes=20000)
    options, cars, platform = _sections(files.conf.read_text())
    assert options["per_listener_settings"] == "true"
    assert cars == {"listener": "18830 0.0.0.0", "allow_anonymous": "false",
                    "use_username_as_clientid": "true", "password_file": str(files.password_file),
                    "acl_file": str(files.acl_file)}
    assert platform == {"listener": "18840 127.0.0.1", "allow_anonymous": "false",
                        "password_file": str(files.platform_password_file),
                        "acl_file": str(files.platform_acl_file)}
    assert options["persistent_client_expiration"] == DEFAULT_PERSISTENT_CLIENT_EXPIRATION == "7d"
    assert options["persistence"] == "true"
    assert options["persistence_location"] == f"{files.persistence_dir}/"
    assert files.persistence_dir.is_dir()
    assert int(options["max_queued_messages"]) >= 100_000
    assert int(options["max_inflight_messages"]) >= 2000
    assert int(options["max_packet_size"]) == packet_limit(20000) > 20000


def test_config_from_settings_uses_the_platform_database_and_service_account(tmp_path) -> None:
    settings = Settings.load(data_dir=tmp_path / "data", ingest_password="from-settings")
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    _cars(engine, VIN_A)
    engine.dispose()
    files = mosquitto_config_from_settings(settings, tmp_path / "mq", port=1883, platform_port=1884,
                                           platform_bind="10.0.0.5")
    assert set(_entries(files.password_file)) == {VIN_A}
    platform = _entries(files.platform_password_file)
    assert set(platform) == {settings.ingest_username}
    assert verify_car_secret("from-settings", platform[settings.ingest_username])
    assert "listener 1884 10.0.0.5" in files.conf.read_text()


def test_the_two_listeners_need_two_ports(tmp_path) -> None:
    with pytest.raises(ConfigError, match="two ports"):
        conf_text(MosquittoFiles.in_dir(tmp_path), port=1883, platform_port=1883)


def test_listener_urls() -> None:
    assert listener_url("127.0.0.1", 1884) == "mqtt://127.0.0.1:1884"
    assert listener_url("::1", 1884) == "mqtt://[::1]:1884"
    assert listener_url(None, 1883).startswith("mqtt://") and "0.0.0.0" not in listener_url("0.0.0.0", 1883)


def test_reload_of_a_missing_process_says_so() -> None:
    with pytest.raises(ChelianError, match="no Mosquitto process"):
        reload_mosquitto(2**22 + 12345)
