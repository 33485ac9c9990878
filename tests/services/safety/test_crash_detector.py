"""The crash detector on simulated signal sequences: real crashes alert, near-misses do not."""

from __future__ import annotations

from chelian.services.safety.crash import CrashDetector, CrashRules
from tests.services.safety.helpers import drive, row

T0 = 1_764_000_000_000


def detections(rows) -> list:
    detector = CrashDetector(CrashRules())
    return [d for d in (detector.feed(r) for r in rows) if d is not None]


def test_impact_with_speed_collapse_is_a_crash():
    rows = drive(
        1,
        1,
        T0,
        [(62.0, 0.2), (61.0, -0.5), (60.0, -58.0), (3.0, -12.0), (0.0, 0.0)],
        **{
            "Vehicle.CurrentLocation.Latitude": 42.5,
            "Vehicle.CurrentLocation.Longitude": 1.52,
            "Vehicle.CurrentLocation.Heading": 91.0,
        },
    )
    found = detections(rows)
    assert len(found) == 1
    d = found[0]
    assert (d.cause, d.seq, d.ts_ms) == ("impact", 4, T0 + 600)
    assert d.speed_before_kmh == 62.0
    assert (d.latitude, d.longitude, d.heading) == (42.5, 1.52, 91.0)
    assert d.detail["peak_acceleration"] == 58.0 and d.detail["spike_seq"] == 3


def test_lateral_impact_counts_too():
    rows = [
        row(1, 1, T0, {"Vehicle.Speed": 45.0}),
        row(1, 2, T0 + 200, {"Vehicle.Acceleration.Lateral": 47.0, "Vehicle.Speed": 44.0}),
        row(1, 3, T0 + 700, {"Vehicle.Speed": 0.0}),
    ]
    assert [d.cause for d in detections(rows)] == ["impact"]


def test_hard_but_safe_stop_is_not_a_crash():
    # 100 -> 0 km/h at about 1 g: strong deceleration, speed going down gradually over 2.8 s.
    speeds = [100.0 - 7.2 * i for i in range(14)] + [0.0, 0.0]
    assert detections(drive(1, 1, T0, [(max(s, 0.0), -10.5) for s in speeds])) == []


def test_pothole_spike_without_speed_collapse_is_not_a_crash():
    seq = [(50.0, 0.1), (50.0, 44.0), (49.0, -41.0), (50.0, 0.3)] + [(50.0 - i, -0.8) for i in range(20)]
    assert detections(drive(1, 1, T0, seq)) == []


def test_spike_then_slow_stop_long_after_is_not_a_crash():
    seq = [(40.0, 0.0), (40.0, 45.0)] + [(38.0, -1.0)] * 12 + [(0.0, 0.0)]  # stopped 2.6 s after the spike
    assert detections(drive(1, 1, T0, seq)) == []


def test_collapse_from_walking_pace_is_not_a_crash():
    assert detections(drive(1, 1, T0, [(12.0, 0.0), (11.0, 42.0), (0.0, 0.0)])) == []


def test_airbag_turning_true_is_a_crash_once():
    airbag = "Vehicle.Cabin.Seat.Row1.DriverSide.Airbag.IsDeployed"
    rows = [
        row(1, 1, T0, {airbag: False, "Vehicle.Speed": 30.0}),
        row(1, 2, T0 + 100, {airbag: True, "Vehicle.Speed": 28.0}),
        row(1, 3, T0 + 200, {airbag: True, "Vehicle.Speed": 0.0}),
    ]
    found = detections(rows)
    assert [(d.cause, d.seq, d.speed_before_kmh) for d in found] == [("airbag", 2, 30.0)]
    assert found[0].detail == {"airbags": [airbag]}


def test_cars_do_not_share_state():
    a = drive(1, 1, T0, [(60.0, 0.0), (60.0, 50.0)])
    b = drive(2, 1, T0 + 300, [(0.0, 0.0)])  # another car standing still right after car 1's spike
    assert detections([*a, *b]) == []
