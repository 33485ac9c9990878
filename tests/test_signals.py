import math

import pytest

from chelian.signals import BUILTIN_SIGNALS, Catalog, SignalError, read_vss_json


@pytest.fixture
def catalog():
    return Catalog.builtin()


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("Vehicle.Nope", 1, "unknown_signal"),
        ("Vehicle.Speed", "fast", "wrong_type"),
        ("Vehicle.Speed", True, "wrong_type"),
        ("Vehicle.Speed", 900.0, "out_of_range"),
        ("Vehicle.Speed", math.inf, "out_of_range"),
        ("Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", 1, "wrong_type"),
        ("Vehicle.TraveledDistance", -1, "out_of_range"),
        ("Vehicle.TraveledDistance", 1.5, "wrong_type"),
        ("Vehicle.Powertrain.FuelSystem.RelativeLevel", 101, "out_of_range"),
        ("Vehicle.LowVoltageSystemState", "DRIVING", "out_of_range"),
        ("Vehicle.Diagnostics.DTCList", ["P0301", 7], "wrong_type"),
    ],
)
def test_bad_values_are_refused_with_reason(catalog, path, value, reason):
    with pytest.raises(SignalError) as err:
        catalog.check(path, value)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("Vehicle.Speed", 42),
        ("Vehicle.CurrentLocation.Latitude", 43.7384),
        ("Vehicle.Cabin.Door.Row1.DriverSide.IsLocked", True),
        ("Vehicle.TraveledDistance", 123456.0),
        ("Vehicle.LowVoltageSystemState", "ON"),
        ("Vehicle.Diagnostics.DTCList", ["P0301"]),
    ],
)
def test_good_values_pass(catalog, path, value):
    assert catalog.check(path, value) == value


def test_builtin_paths_exist_in_the_real_vss_tree(shared_data):
    spec = {s.path: s for s in read_vss_json(shared_data / "vss" / "vss.json")}
    for signal in BUILTIN_SIGNALS:
        assert signal.path in spec, signal.path
        assert signal.datatype == spec[signal.path].datatype, signal.path
        assert signal.unit == spec[signal.path].unit, signal.path


def test_vss_export_extends_the_catalog(shared_data):
    extended = Catalog.load(shared_data / "vss" / "vss.json")
    assert len(extended) > 10 * len(BUILTIN_SIGNALS)
    assert extended.check("Vehicle.ADAS.ABS.IsEngaged", True) is True
    # built-in ranges stay in force where both define a signal
    with pytest.raises(SignalError):
        extended.check("Vehicle.Speed", 900.0)
