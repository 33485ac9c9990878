"""Settings refuse nonsense thresholds at start, naming the setting and the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chelian.config import Settings
from chelian.errors import ConfigError
from tests.ingest.vss_export import write_vss_export


@pytest.mark.parametrize("name,value,reason", [
    ("crash_accel_threshold_ms2", 0, "CHELIAN_CRASH_ACCEL_THRESHOLD_MS2: Input should be greater than 0"),
    ("crash_collapse_window_ms", 120_000, "CHELIAN_CRASH_COLLAPSE_WINDOW_MS: Input should be less than"),
    ("unauthorised_movement_radius_m", -5, "CHELIAN_UNAUTHORISED_MOVEMENT_RADIUS_M: Input should be"),
    ("stolen_tracking_interval_ms", 50, "CHELIAN_STOLEN_TRACKING_INTERVAL_MS: Input should be greater"),
    ("stolen_tracking_duration_s", 90_000, "CHELIAN_STOLEN_TRACKING_DURATION_S: Input should be less"),
    ("geofence_confirm_fixes", 0, "CHELIAN_GEOFENCE_CONFIRM_FIXES: Input should be greater than or equal"),
    ("health_low_tyre_kpa", "low", "CHELIAN_HEALTH_LOW_TYRE_KPA: Input should be a valid number"),
])
def test_a_bad_threshold_is_refused_with_its_name(name, value, reason):
    with pytest.raises(ConfigError) as caught:
        Settings.load(**{name: value})
    assert reason in str(caught.value)


def test_a_bad_threshold_from_the_environment_is_refused_too(monkeypatch):
    monkeypatch.setenv("CHELIAN_TRIP_HARSH_BRAKING_MS2", "-3.5")
    with pytest.raises(ConfigError, match="CHELIAN_TRIP_HARSH_BRAKING_MS2: Input should be greater than 0"):
        Settings.load()


@pytest.mark.parametrize("values,reason", [
    ({"crash_stopped_kmh": 25.0},
     "CHELIAN_CRASH_STOPPED_KMH (25) must be below CHELIAN_CRASH_MIN_SPEED_KMH (20)"),
    ({"trip_harsh_acceleration_ms2": 1.5},
     "CHELIAN_TRIP_HARSH_REARM_MS2 (2) must be below both harsh thresholds"),
])
def test_thresholds_that_contradict_each_other_are_refused(values, reason):
    with pytest.raises(ConfigError) as caught:
        Settings.load(**values)
    assert reason in str(caught.value) and "Value error" not in str(caught.value)


def test_tuned_thresholds_are_kept():
    s = Settings.load(crash_accel_threshold_ms2=30.0, crash_min_speed_kmh=15.0,
                      stolen_tracking_interval_ms=500)
    assert (s.crash_accel_threshold_ms2, s.crash_min_speed_kmh, s.stolen_tracking_interval_ms) == \
        (30.0, 15.0, 500)


def test_a_vss_export_is_checked_when_settings_are_loaded(tmp_path):
    export = write_vss_export(tmp_path / "vss.json")
    assert Settings.load(data_dir=tmp_path, vss_json=export).vss_json == export
    with pytest.raises(ConfigError, match=r"CHELIAN_VSS_JSON: cannot read VSS JSON export .*nope\.json: "
                                          r"No such file or directory"):
        Settings.load(data_dir=tmp_path, vss_json=tmp_path / "nope.json")


def _run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHELIAN_")}
    return subprocess.run([sys.executable, "-m", "chelian", *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content,reason", [
    (None, "cannot read VSS JSON export {path}: No such file or directory"),
    ('{"Vehicle": {"type": "branch", "children": ',
     "VSS JSON export {path} is not valid JSON: Expecting value"),
])
def test_chelian_ingest_with_a_bad_vss_export_fails_with_one_clear_line(tmp_path, content, reason):
    path = tmp_path / "exports" / "vss.json"
    if content is not None:
        path.parent.mkdir()
        path.write_text(content)
    result = _run_cli("ingest", "--data-dir", str(tmp_path / "data"), env={"CHELIAN_VSS_JSON": str(path)},
                      cwd=tmp_path)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: invalid settings: CHELIAN_VSS_JSON: "), result.stderr
    assert reason.format(path=path) in result.stderr


def test_cars_connect_to_the_public_listener_and_the_platform_to_its_own():
    settings = Settings.load(mqtt_url="mqtt://127.0.0.1:1885", public_mqtt_url="mqtt://cars.example.com:1883")
    assert settings.broker_host_port == ("127.0.0.1", 1885)
    assert settings.car_broker_host_port == ("cars.example.com", 1883)


def test_without_a_public_url_cars_use_the_platform_broker():
    settings = Settings.load(mqtt_url="mqtt://broker:1999")
    assert settings.car_broker_host_port == ("broker", 1999)
