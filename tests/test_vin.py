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


def test_check_digit_not_enforced_in_europe():
    # A European VIN (W = Germany) has no check digit in position 9.
    assert normalise_vin("WVWZZZ1JZ3W386752") == "WVWZZZ1JZ3W386752"


def test_with_check_digit_produces_valid_vins():
    vin = with_check_digit("1HGCM82633A004352")
    assert normalise_vin(vin) == vin
    assert vin[8] == check_digit(vin)


def _gb16735_check_digit(vin: str) -> str:
    """GB 16735 (same as ISO 3779 Annex / 49 CFR 565), written out here independently of chelian.vin."""
    values = {c: int(c) for c in "0123456789"} | {"P": 7, "R": 9}
    for letters, first in (("ABCDEFGH", 1), ("JKLMN", 1), ("STUVWXYZ", 2)):
        values |= {c: first + i for i, c in enumerate(letters)}
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    remainder = sum(values[c] * w for c, w in zip(vin, weights, strict=True)) % 11
    return "X" if remainder == 10 else str(remainder)


# A SAIC-Volkswagen (WMI LSV) VIN; "LSVAU2180N2183294" as often quoted has a wrong position 9,
# its real check digit is X.
CHINESE_VIN = "LSVAU218XN2183294"


def test_chinese_vin_with_correct_check_digit_is_accepted():
    assert _gb16735_check_digit(CHINESE_VIN) == CHINESE_VIN[8] == "X"
    assert normalise_vin(CHINESE_VIN.lower()) == CHINESE_VIN


def test_chinese_vin_with_wrong_check_digit_is_refused():
    # China (WMI starting with L, GB 16735) mandates the check digit, like North America.
    with pytest.raises(ValidationError, match="check digit is '0', expected 'X'"):
        normalise_vin("LSVAU2180N2183294")
    for wrong in "0123456789":  # every other digit in position 9 is refused too
        with pytest.raises(ValidationError, match="check digit"):
            normalise_vin(CHINESE_VIN[:8] + wrong + CHINESE_VIN[9:])
