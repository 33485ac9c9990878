import pytest

from chelian.signals import Catalog, Signal
from chelian.storage.values import coerce_value, decode_value, encode_value

CATALOG = Catalog.builtin()


@pytest.mark.parametrize(
    ("path", "value", "columns"),
    [
        ("Vehicle.Speed", 42.5, (42.5, None)),
        ("Vehicle.IsMoving", True, (1.0, None)),
        ("Vehicle.IsMoving", False, (0.0, None)),
        ("Vehicle.TraveledDistance", 123456, (123456.0, None)),
        ("Vehicle.Powertrain.Transmission.CurrentGear", -1, (-1.0, None)),
        ("Vehicle.LowVoltageSystemState", "ON", (None, "ON")),
        ("Vehicle.Diagnostics.DTCList", ["P0301", "U0100"], (None, '["P0301","U0100"]')),
        ("Vehicle.Diagnostics.DTCList", [], (None, "[]")),
    ],
)
def test_round_trip_keeps_type(path, value, columns):
    signal = CATALOG.get(path)
    assert encode_value(signal, value) == columns
    decoded = decode_value(signal, *columns)
    assert decoded == value
    assert type(decoded) is type(value)


def test_int_signal_given_integral_float_decodes_as_int():
    signal = CATALOG.get("Vehicle.TraveledDistance")
    assert decode_value(signal, *encode_value(signal, 10.0)) == 10
    assert type(decode_value(signal, 10.0, None)) is int


def test_float_signal_given_int_decodes_as_float():
    signal = CATALOG.get("Vehicle.Speed")
    assert type(decode_value(signal, *encode_value(signal, 50))) is float


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("Vehicle.IsMoving", 1),
        ("Vehicle.Speed", True),
        ("Vehicle.Speed", "fast"),
        ("Vehicle.LowVoltageSystemState", 3),
        ("Vehicle.Diagnostics.DTCList", "P0301"),
        ("Vehicle.Diagnostics.DTCList", ["P0301", 7]),
    ],
)
def test_wrong_type_is_refused(path, value):
    with pytest.raises(TypeError, match=path):
        encode_value(CATALOG.get(path), value)


def test_none_means_nothing_stored():
    for signal in CATALOG:
        assert encode_value(signal, None) == (None, None)
        assert decode_value(signal, None, None) is None


def test_unknown_datatype_is_refused():
    odd = Signal("Vehicle.Odd", "struct")
    with pytest.raises(TypeError):
        encode_value(odd, 1)
    with pytest.raises(TypeError):
        decode_value(odd, 1.0, None)



@pytest.mark.parametrize(
    ("path", "raw", "value"),
    [
        ("Vehicle.IsMoving", 1, True),
        ("Vehicle.IsMoving", False, False),
        ("Vehicle.TraveledDistance", 12.0, 12),
        ("Vehicle.Speed", 50, 50.0),
        ("Vehicle.LowVoltageSystemState", "ON", "ON"),
        ("Vehicle.Diagnostics.DTCList", '["P0301"]', ["P0301"]),
        ("Vehicle.Diagnostics.DTCList", ["P0301"], ["P0301"]),
        ("Vehicle.Speed", None, None),
    ],
)
def test_coerce_json_value_to_signal_type(path, raw, value):
    got = coerce_value(CATALOG.get(path), raw)
    assert got == value and type(got) is type(value)
