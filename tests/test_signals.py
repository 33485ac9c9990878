import math

import pytest

from chelian.errors import ConfigError
from chelian.signals import BUILTIN_SIGNALS, Catalog, SignalError, read_vss_json
from tests.ingest.vss_export import EXTENSION_SIGNAL, write_vss_export


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


def test_a_small_export_adds_its_signals_and_keeps_builtin_ranges(tmp_path):
    extended = Catalog.load(write_vss_export(tmp_path / "vss.json"))
    assert len(extended) == len(BUILTIN_SIGNALS) + 2
    assert extended.check(EXTENSION_SIGNAL, 88.5) == 88.5
    assert extended.get(EXTENSION_SIGNAL).unit == "km/h"
    assert EXTENSION_SIGNAL not in Catalog.builtin()
    with pytest.raises(SignalError):
        extended.check("Vehicle.Speed", 900.0)


@pytest.mark.parametrize(("content", "reason"), [
    (None, "cannot read VSS JSON export"),
    ('{"Vehicle": {"type": "branch", ', "is not valid JSON: Expecting"),
    ("[1, 2]", "is not a VSS tree"),
    ('{"Vehicle": {"type": "branch", "children": {"Speed": 3}}}', 'node Vehicle.Speed has no "type"'),
    ('{"Vehicle": {"type": "branch", "children": {}}}', "holds no signals"),
])
def test_a_bad_export_is_a_config_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "export.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        Catalog.load(path)
    assert reason in str(caught.value) and str(path) in str(caught.value)
