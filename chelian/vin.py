"""Vehicle Identification Numbers (ISO 3779 / 49 CFR 565).

A VIN is 17 characters from 0-9 and A-Z without I, O and Q. North American VINs
(first character 1-5, 49 CFR 565) and Chinese VINs (WMI starting with L, GB 16735) carry a
check digit in position 9; elsewhere (e.g. Europe) position 9 is free, so the check digit
is verified only where it applies.

Example:
    normalise_vin("1m8gdm9axkp042788")   # "1M8GDM9AXKP042788"
    normalise_vin("1M8GDM9AXKP042789")   # raises ValidationError: check digit
"""

from __future__ import annotations

import re

from chelian.errors import ValidationError

_VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7, "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
CHECK_DIGIT_REGIONS = "12345L"  # North America: 1-5 (US, Canada, Mexico); China: L (GB 16735)


def check_digit(vin: str) -> str:
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def normalise_vin(raw: str) -> str:
    """Upper-case and validate a VIN, raising ValidationError with the reason."""
    vin = raw.strip().upper()
    if len(vin) != 17:
        raise ValidationError(f"VIN must be 17 characters, got {len(vin)}")
    if not _VIN_RE.match(vin):
        bad = sorted({c for c in vin if not re.match(r"[A-HJ-NPR-Z0-9]", c)})
        raise ValidationError(f"VIN contains characters not allowed in a VIN: {''.join(bad)}")
    if vin[0] in CHECK_DIGIT_REGIONS and vin[8] != check_digit(vin):
        raise ValidationError(f"VIN check digit is {vin[8]!r}, expected {check_digit(vin)!r}")
    return vin


def with_check_digit(vin16_or_17: str) -> str:
    """Return the VIN with position 9 set to its check digit (used by the simulator)."""
    vin = vin16_or_17.upper()
    if len(vin) != 17:
        raise ValidationError("VIN must be 17 characters")
    return vin[:8] + check_digit(vin) + vin[9:]
