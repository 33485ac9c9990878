"""Clearing trouble codes remotely: a signed `clear_dtcs` command like any other.

Clearing codes resets the ECU's readiness monitors, so the car verifies it like every command
(chelian/services/commands; owner or platform keys may send it). The car's following
DTCList (or a `dtc_reported` event with status `cleared`) closes the codes here through the
diagnostics detector. `require_clear_supported` keeps the API honest should a deployment run
with a command catalog that lacks the row.
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
