"""Clearing trouble codes remotely: the integration point with signed commands.

Clearing codes resets the ECU's readiness monitors, so it must be a signed command the car
checks like any other (chelian/services/commands). The commands catalog
(`chelian.services.commands.catalog.COMMANDS`) does not have a `clear_dtcs` row yet and is
owned by the commands capability; this module names the command and refuses early until the
row exists, so the API answers "not supported yet" instead of sending something the car
would reject as `malformed`.

When the row is added (`CommandSpec("clear_dtcs", _OWNER_OR_PLATFORM, "clear stored trouble
codes", {"codes": ...})`) and the agent executes it, the car's following DTCList (or a
`dtc_reported` event with status `cleared`) closes the codes here through the detector.
"""

from __future__ import annotations

from typing import Final

from chelian.errors import ValidationError
from chelian.services.commands.catalog import COMMANDS

CLEAR_DTCS: Final = "clear_dtcs"


def clear_supported() -> bool:
    return CLEAR_DTCS in COMMANDS


def require_clear_supported() -> str:
    if not clear_supported():
        raise ValidationError(f"{CLEAR_DTCS} is not in the command catalog yet: codes clear when the car "
                              "stops reporting them")
    return CLEAR_DTCS
