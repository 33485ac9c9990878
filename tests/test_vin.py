import pytest

from chelian.errors import ValidationError
from chelian.vin import check_digit, normalise_vin, with_check_digit


def test_valid_north_american_vin_is_upper_cased():
    assert normalise_vin(" 1m8gdm9axkp042788 ") == "1M8GDM9AXKP042788"


@pytest.mark.parametrize(
    ("vin", "reason"),
    [
        ("1M8GDM9AXKP04278", "17 characters"),
        ("1M8GDM9AXKP0427888", "17 characters"),
        ("1M8GDM9AXKP04278O", "not allowed"),
        ("IM8GDM9AXKP042788", "not allowed"),
        ("1M8GDM9AXKP042789", "check digit"),
    ],
)
def test_invalid_vins_are_refused_with_reason(vin, reason):
    with pytest.raises(ValidationError, match=reason):
        normalise_vin(vin)


def test_check_digit_only_enforced_for_north_america():
    # A European VIN (W = Germany) has no check digit in position 9.
    assert normalise_vin("WVWZZZ1JZ3W386752") == "WVWZZZ1JZ3W386752"


def test_with_check_digit_produces_valid_vins():
    vin = with_check_digit("1HGCM82633A004352")
    assert normalise_vin(vin) == vin
    assert vin[8] == check_digit(vin)
