"""The embedded broker's own parts: rules, login cache, service account, child process."""

from __future__ import annotations

import socket
import stat
import threading
import time

import pytest

from chelian.config import Settings
from chelian.errors import ChelianError, ConfigError
from chelian.link import broker as broker_mod
from chelian.link.broker import (
    BrokerStartError,
    ChelianTopicPlugin,
    EmbeddedBroker,
    Identity,
    VerificationCache,
    may_publish,
    may_receive,
    may_subscribe,
    unshare,
)
from chelian.link.service_account import PASSWORD_FILE, service_account
from chelian.link.topics import STATUS, telemetry_topic, vehicle_topic
from chelian.services.accounts.signup import sign_up
from chelian.services.fleet.provisioning import provision, rotate_secret
from chelian.storage.db import make_engine, upgrade
from tests.fixtures_brokers import BrokerStack, MqttProbe, free_port

VIN, OTHER = "1M8GDM9AXKP042788", "WVWZZZ1JZ3W386752"
CAR = Identity(VIN, VIN, "$7$hash")
SERVICE = Identity("chelian-ingest", None)


@pytest.mark.parametrize("topic, allowed", [
    (f"v1/vehicles/{VIN}/telemetry", True),
    (f"v1/vehicles/{VIN}/events", True),
    (f"v1/vehicles/{VIN}/status", True),
    (f"v1/vehicles/{VIN}/acks", True),
    (f"v1/vehicles/{VIN}/commands", False),
    (f"v1/vehicles/{OTHER}/telemetry", False),
    (f"v1/vehicles/{VIN}/telemetry/more", False),
    (f"v2/vehicles/{VIN}/telemetry", False),
    ("v1/other", False),
])
def test_a_car_publishes_only_on_its_own_upstream_channels(topic: str, allowed: bool) -> None:
    assert may_publish(CAR, topic) is allowed


@pytest.mark.parametrize("topic_filter, allowed", [
    (f"v1/vehicles/{VIN}/commands", True),
    (f"v1/vehicles/{OTHER}/commands", False),
    ("v1/vehicles/+/commands", False),
    (f"v1/vehicles/{VIN}/+", False),
    ("v1/vehicles/#", False),
    ("#", False),
    (f"$share/g/v1/vehicles/{VIN}/commands", False),
])
def test_a_car_subscribes_only_to_its_own_commands(topic_filter: str, allowed: bool) -> None:
    assert may_subscribe(CAR, topic_filter) is allowed


@pytest.mark.parametrize("topic_filter, allowed", [
    ("v1/vehicles/+/telemetry", True),
    ("v1/vehicles/#", True),
    ("$share/chelian-ingest/v1/vehicles/+/telemetry", True),
    ("$share//v1/vehicles/+/telemetry", False),
    ("$share/+/v1/vehicles/+/telemetry", False),
    ("$share/g", False),
    ("#", False),
    ("+/vehicles/x/telemetry", False),
    ("$SYS/#", False),
])
def test_the_service_account_subscribes_below_the_root_only(topic_filter: str, allowed: bool) -> None:
    assert may_subscribe(SERVICE, topic_filter) is allowed


def test_receive_and_publish_rules() -> None:
    assert may_receive(CAR, f"v1/vehicles/{VIN}/commands")
    assert not may_receive(CAR, f"v1/vehicles/{OTHER}/commands")
    assert not may_receive(CAR, f"v1/vehicles/{VIN}/telemetry")
    assert may_receive(SERVICE, f"v1/vehicles/{VIN}/telemetry")
    assert may_publish(SERVICE, f"v1/vehicles/{VIN}/commands")
    assert not may_publish(SERVICE, "elsewhere/x")
    assert unshare("$share/g/a/b") == "a/b" and unshare("a/b") == "a/b"


def test_verification_cache_expires_and_forgets_revoked(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(broker_mod.time, "monotonic", lambda: now[0])
    cache = VerificationCache(ttl_s=30, max_entries=3)
    key = cache.key(VIN, "secret")
    assert key != cache.key(VIN, "other") and "secret" not in repr(key)
    cache.put(key, CAR)
    now[0] += 29
    assert cache.get(key) == CAR
    now[0] += 2
    assert cache.get(key) is None
    cache.put(key, CAR)
    verified_at = now[0]
    cache.retain(lambda identity, at: at > verified_at)  # a snapshot taken after it: revoked
    assert cache.get(key) is None
    cache.put(key, CAR)
    cache.retain(lambda identity, at: at >= verified_at)  # verified after the snapshot: kept
    assert cache.get(key) == CAR
    for i in range(5):
        cache.put(cache.key(f"u{i}", "p"), Identity(f"u{i}", f"u{i}"))
    assert len(cache._entries) == 3 and cache.get(cache.key("u4", "p")) is not None


def test_topic_denials_are_logged_per_username_without_flooding(caplog: pytest.LogCaptureFixture) -> None:
    from amqtt.contexts import Action, BaseContext
    from amqtt.session import Session

    context = BaseContext()
    context.config = ChelianTopicPlugin.Config(denial_log_interval_s=60)
    rules = ChelianTopicPlugin(context)
    session = Session()
    session.attributes["chelian.identity"] = CAR
    with caplog.at_level("WARNING", logger="chelian.link.broker"):
        for _ in range(5):
            assert not rules.allowed(session, f"v1/vehicles/{OTHER}/telemetry", Action.PUBLISH)
        assert rules.allowed(session, f"v1/vehicles/{VIN}/telemetry", Action.PUBLISH)
        assert not rules.allowed(Session(), f"v1/vehicles/{VIN}/telemetry", Action.PUBLISH)  # no identity
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"topic_denied username={VIN} action=publish topic=v1/vehicles/{OTHER}/telemetry "
                     "suppressed=0"]


# --- service account -------------------------------------------------------------------


def test_service_account_prefers_the_configured_password(tmp_path) -> None:
    settings = Settings.load(data_dir=tmp_path, ingest_password="configured")
    assert service_account(settings).password == "configured"
    assert not (tmp_path / PASSWORD_FILE).exists()


def test_service_account_secret_is_generated_once_privately_and_shared(tmp_path) -> None:
    settings = Settings.load(data_dir=tmp_path / "new")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(service_account(settings).password))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results[0]) >= 40
    path = tmp_path / "new" / PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert service_account(settings).password == results[0]
    assert [p.name for p in path.parent.iterdir()] == [PASSWORD_FILE]
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        service_account(settings)


# --- the child process ---------------------------------------------------------------


def _settings(tmp_path, database_url: str, port: int | None = None) -> Settings:  # type: ignore[no-untyped-def]
    return Settings.load(data_dir=tmp_path / "data", database_url=database_url, mqtt_host="127.0.0.1",
                         mqtt_port=port or free_port())


def test_start_fails_clearly_when_the_port_is_taken(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = _settings(tmp_path, url, taken.getsockname()[1])
        with pytest.raises(BrokerStartError, match="already in use"):
            EmbeddedBroker(settings, log_path=tmp_path / "broker.log").start()


def test_start_fails_clearly_on_an_unmigrated_database(tmp_path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(BrokerStartError, match="chelian db upgrade"):
        EmbeddedBroker(settings, log_path=tmp_path / "broker.log").start()


def test_embedded_broker_refuses_settings_for_an_external_broker(tmp_path) -> None:
    settings = Settings.load(data_dir=tmp_path, mqtt_url="mqtt://broker.example:1883")
    with pytest.raises(ChelianError, match="external broker"):
        EmbeddedBroker(settings)


def test_a_verified_login_is_cached_then_the_child_stops_cleanly(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = _settings(tmp_path, url)
    owner = sign_up(engine, "o@example.com", "password1")
    _, creds = provision(engine, vin=VIN, make="M", model="X", year=2020, owner_id=owner.id, mqtt_url="x")
    with EmbeddedBroker(settings, auth_cache_ttl_s=60, log_path=tmp_path / "broker.log") as broker:
        assert broker.running
        first = MqttProbe("127.0.0.1", settings.mqtt_port, VIN, creds.mqtt_password, client_id=VIN)
        assert not first.connect().is_failure
        first.close()
        rotate_secret(engine, VIN, "x")
        # Within the TTL the old secret still logs in without a database check ...
        again = MqttProbe("127.0.0.1", settings.mqtt_port, VIN, creds.mqtt_password, client_id=VIN)
        assert not again.connect().is_failure
        again.close()
        process = broker.process
    engine.dispose()
    assert process is not None and process.poll() is not None and not broker.running
    log = (tmp_path / "broker.log").read_text()
    assert "broker_started" in log and "broker_stopping" in log


def test_queue_for_a_disconnected_session_is_bounded(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = _settings(tmp_path, url)
    owner = sign_up(engine, "o@example.com", "password1")
    _, car = provision(engine, vin=VIN, make="M", model="X", year=2020, owner_id=owner.id, mqtt_url="x")
    engine.dispose()
    account = service_account(settings)
    with EmbeddedBroker(settings, max_queued_messages=3, log_path=tmp_path / "broker.log"):
        def ingest() -> MqttProbe:
            probe = MqttProbe("127.0.0.1", settings.mqtt_port, account.username, account.password,
                              client_id="chelian-ingest-0", clean_session=False)
            assert not probe.connect().is_failure
            return probe
        away = ingest()
        assert away.subscribe(f"v1/vehicles/{VIN}/telemetry") == 1
        away.close()
        sender = MqttProbe("127.0.0.1", settings.mqtt_port, VIN, car.mqtt_password, client_id=VIN)
        sender.connect()
        for i in range(5):
            assert sender.publish(f"v1/vehicles/{VIN}/telemetry", str(i).encode())
        sender.close()
        back = ingest()
        got = [back.expect(timeout=5) for _ in range(3)]
        assert [m.payload for m in got if m is not None] == [b"0", b"1", b"2"]
        assert back.expect(timeout=0.3) is None
        back.close()
    assert "queue_full" in (tmp_path / "broker.log").read_text()


@pytest.mark.parametrize("leave", ["disconnect", "drop"])
@pytest.mark.parametrize("ingest_away", [False, True], ids=["live", "persistent-away"])
def test_acknowledged_messages_are_routed_when_the_sender_leaves_at_once(
        embedded_stack: BrokerStack, leave: str, ingest_away: bool) -> None:
    """Once the broker has PUBACKed a QoS 1 message it routes it, even if the car is gone a moment later.

    amqtt 0.12.1 acknowledges on arrival and routes later from the connection's own loop; a car
    that replays a backlog and disconnects at once lost its last messages (its retained
    `offline` status among them) when that loop was cancelled.
    """
    car = embedded_stack.add_car(VIN)
    kwargs = {"client_id": "chelian-ingest-0", "clean_session": False}
    ingest = embedded_stack.service_client(**kwargs)
    assert ingest.subscribe(telemetry_topic(VIN)) == 1
    assert ingest.subscribe(vehicle_topic(VIN, STATUS)) == 1
    if ingest_away:
        ingest.close()
    sender = embedded_stack.car_client(car)
    sent = [f"m{i}".encode() for i in range(500)]
    infos = [sender.client.publish(telemetry_topic(VIN), payload, qos=1) for payload in sent]
    infos.append(sender.client.publish(vehicle_topic(VIN, STATUS), b"offline", qos=1, retain=True))
    infos[-1].wait_for_publish(timeout=30)
    deadline = time.monotonic() + 30
    while not all(info.is_published() for info in infos) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(info.is_published() for info in infos)  # every one PUBACKed by the broker ...
    if leave == "disconnect":
        sender.close()
    else:
        sender.client.socket().shutdown(socket.SHUT_RDWR)  # FIN now, no DISCONNECT
        sender.drop()
    if ingest_away:
        ingest = embedded_stack.service_client(**kwargs)
    got: set[bytes] = set()
    while len(got) < len(sent) + 1 and (msg := ingest.expect(timeout=5)) is not None:
        got.add(msg.payload)
    missing = [p for p in sent if p not in got]
    assert missing == []  # ... so every one reaches the subscriber
    assert b"offline" in got
    late = embedded_stack.service_client()
    assert late.subscribe(vehicle_topic(VIN, STATUS)) == 1
    status = late.expect(timeout=5)
    assert status is not None and status.payload == b"offline" and status.retain
