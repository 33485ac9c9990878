"""Settings refuse nonsense thresholds at start, naming the setting and the reason."""

from __future__ import annotations

import pytest

from chelian.config import Settings
from chelian.errors import ConfigError


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
