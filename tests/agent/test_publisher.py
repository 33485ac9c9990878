"""Per-signal rate, deadband and heartbeat: what a car sends and, as much, what it does not."""

from __future__ import annotations

import pytest

from chelian.agent.publisher import DISCRETE, ChangePicker, PolicyTable, SignalPolicy
from chelian.signals import Catalog

SPEED, LAT = "Vehicle.Speed", "Vehicle.CurrentLocation.Latitude"
LOCK = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
TEMP, DTC = "Vehicle.Exterior.AirTemperature", "Vehicle.Diagnostics.DTCList"


def picker(**rules: SignalPolicy) -> ChangePicker:
    return ChangePicker(PolicyTable.standard().with_rules(rules))


def test_first_sample_sends_everything_then_nothing_unchanged():
    p = picker()
    snap = {SPEED: 0.0, LOCK: True, TEMP: 12.0, DTC: []}
    assert p.select(snap, 0.0) == snap
    for t in range(1, 30):
        assert p.select(snap, float(t)) == {}


def test_numeric_deadband_is_measured_from_the_last_sent_value():
    p = picker()
    p.select({SPEED: 50.0}, 0.0)
    assert p.select({SPEED: 50.6}, 1.0) == {}
    assert p.select({SPEED: 50.9}, 2.0) == {}           # drift below the 1 km/h deadband
    assert p.select({SPEED: 51.1}, 3.0) == {SPEED: 51.1}  # ... until it adds up


def test_reaching_zero_always_counts():
    p = picker()
    p.select({SPEED: 0.7}, 0.0)
    assert p.select({SPEED: 0.0}, 1.0) == {SPEED: 0.0}
    assert p.select({SPEED: 0.3}, 2.0) == {SPEED: 0.3}


def test_discrete_states_go_out_at_once_and_booleans_are_not_numbers():
    p = picker()
    p.select({LOCK: True, DTC: []}, 0.0)
    assert p.select({LOCK: False, DTC: []}, 0.1) == {LOCK: False}
    assert p.select({LOCK: False, DTC: ["P0301"]}, 0.2) == {DTC: ["P0301"]}


def test_min_interval_holds_a_change_back_until_it_is_allowed():
    p = picker()
    p.select({TEMP: 10.0}, 0.0)
    assert p.select({TEMP: 15.0}, 3.0) == {}              # temperatures: at most every 10 s
    assert p.select({TEMP: 15.0}, 10.0) == {TEMP: 15.0}   # sent once allowed, not lost
    assert p.select({TEMP: 15.0}, 11.0) == {}


def test_heartbeat_resends_unchanged_values_and_lines_them_up():
    p = picker()
    p.select({SPEED: 0.0, LOCK: True, DTC: []}, 0.0)
    p.select({SPEED: 0.0, LOCK: False, DTC: []}, 25.0)          # the lock's clock restarts at 25 s
    p.select({SPEED: 0.0, LOCK: False, DTC: ["P0420"]}, 50.0)   # the DTC list's at 50 s
    snap = {SPEED: 0.0, LOCK: False, DTC: ["P0420"]}
    assert p.select(snap, 59.0) == {}
    # Speed's heartbeat is due at 60 s; the lock (35 s old, past half its 60 s) rides along,
    # the DTC list (10 s old) does not.
    assert p.select(snap, 60.0) == {SPEED: 0.0, LOCK: False}
    assert p.select(snap, 61.0) == {}
    assert p.select(snap, 110.0) == snap  # from now on all three share one heartbeat


def test_a_custom_rule_wins_and_patterns_match_paths():
    p = picker(**{"Vehicle.Speed": SignalPolicy(0.0, 5.0, 10.0)})
    p.select({SPEED: 50.0}, 0.0)
    assert p.select({SPEED: 55.0}, 1.0) == {}
    assert p.select({SPEED: 55.0}, 5.0) == {SPEED: 55.0}
    table = PolicyTable.standard()
    assert table["Vehicle.Chassis.Axle.Row2.Wheel.Left.Tire.Pressure"].deadband == 3.0
    assert table["Vehicle.Cabin.HVAC.AmbientAirTemperature"] == table[TEMP]
    assert table[LOCK] is DISCRETE


def test_everything_resets_the_clocks():
    p = picker()
    p.select({SPEED: 10.0, LAT: 1.0}, 0.0)
    assert p.everything({SPEED: 10.0, LAT: 1.0}, 50.0) == {SPEED: 10.0, LAT: 1.0}
    assert p.select({SPEED: 10.0, LAT: 1.0}, 100.0) == {}  # heartbeat counts from the snapshot


def test_scaled_sets_every_heartbeat():
    table = PolicyTable.standard().scaled(4.0)
    assert table[SPEED].max_interval_s == table[LOCK].max_interval_s == 4.0
    assert table[TEMP].min_interval_s == 2.0


def test_every_default_rule_names_catalog_signals():
    paths = [s.path for s in Catalog.builtin()]
    import fnmatch
    for pattern, _ in PolicyTable.standard().rules:
        assert fnmatch.filter(paths, pattern), pattern


def test_nonsense_policies_are_refused():
    with pytest.raises(ValueError):
        SignalPolicy(min_interval_s=10, max_interval_s=5)
    with pytest.raises(ValueError):
        SignalPolicy(deadband=-1)
