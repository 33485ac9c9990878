"""The simulated fleet's car models, and valid VINs for them.

VINs follow the North American layout (49 CFR 565) so the check digit applies: a real
manufacturer prefix (WMI + a plausible vehicle descriptor), the check digit in position 9,
the model-year code in 10, a plant code in 11 and a serial number. The VIN of the i-th
simulated car of an owner is derived from the owner's e-mail, so re-running the simulator
finds the same cars again instead of registering new ones. The VIN also names the model, so
a simulator given only credentials knows what it is driving.

Example:
    vin = sim_vin("ana@example.com", 0)   # "1FADP3K27EL807351", a 2014 Ford Focus
    model_for_vin(vin).model              # "Focus"
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from chelian.vin import with_check_digit


@dataclass(frozen=True, slots=True)
class CarModel:
    make: str
    model: str
    vin_prefix: str
    """WMI (3) + vehicle descriptor (5): the first eight VIN characters."""
    plant: str
    first_year: int
    last_year: int
    powertrain: str
    """A `Vehicle.Powertrain.Type` value: COMBUSTION or ELECTRIC."""
    capacity: float
    """Fuel tank in litres, or usable traction battery in kWh."""
    use_per_100km: float
    """Litres or kWh per 100 km in mixed town driving."""
    idle_per_h: float
    """Litres or kWh per hour with the ignition on and the car standing (idling, HVAC)."""


_C, _E = "COMBUSTION", "ELECTRIC"
# Interleaved so that a small fleet mixes engines and batteries.
MODELS: Final[tuple[CarModel, ...]] = (
    CarModel("Ford", "Focus", "1FADP3K2", "L", 2014, 2018, _C, 47.0, 7.4, 0.8),
    CarModel("Tesla", "Model 3", "5YJ3E1EA", "F", 2018, 2024, _E, 57.5, 15.5, 1.2),
    CarModel("Toyota", "Camry", "4T1B11HK", "U", 2015, 2024, _C, 60.0, 7.1, 0.7),
    CarModel("Chevrolet", "Bolt EV", "1G1FY6S0", "4", 2017, 2023, _E, 65.0, 17.0, 1.0),
    CarModel("Ford", "F-150", "1FTEW1EP", "F", 2015, 2024, _C, 98.0, 12.8, 1.5),
    CarModel("Nissan", "Leaf", "1N4AZ1CP", "C", 2013, 2024, _E, 36.0, 17.5, 0.9),
    CarModel("Honda", "Civic", "2HGFC2F5", "H", 2016, 2021, _C, 47.0, 6.9, 0.7),
    CarModel("Ford", "Mustang Mach-E", "3FMTK3SU", "M", 2021, 2024, _E, 88.0, 19.5, 1.3),
    CarModel("Subaru", "Outback", "4S4BTACC", "3", 2020, 2024, _C, 70.0, 8.7, 0.9),
    CarModel("BMW", "X5", "5UXCR6C0", "9", 2019, 2024, _C, 83.0, 10.7, 1.1),
)
_BY_PREFIX: Final = {m.vin_prefix: m for m in MODELS}

# Model-year codes (position 10); I, O, Q, U, Z and 0 are never used there.
_YEAR_CODES: Final = "ABCDEFGHJKLMNPRSTVWXY123456789"
_YEAR_CODE_BASE: Final = 2010


def year_code(year: int) -> str:
    return _YEAR_CODES[(year - _YEAR_CODE_BASE) % len(_YEAR_CODES)]


@dataclass(frozen=True, slots=True)
class SimCar:
    """A simulated car's registration facts."""

    vin: str
    model: CarModel
    year: int


def sim_car(owner_email: str, index: int) -> SimCar:
    """The `index`-th simulated car of an owner: same inputs, same car.

    The serial number counts up from an offset of the owner's, per model, so one owner's cars
    never share a VIN (a hashed serial per car collided about every few thousand cars)."""
    email = owner_email.strip().lower()
    model = MODELS[index % len(MODELS)]
    digest = hashlib.sha256(f"{email}:{index}".encode()).digest()
    year = model.first_year + digest[0] % (model.last_year - model.first_year + 1)
    offset = int.from_bytes(hashlib.sha256(email.encode()).digest()[:4])
    serial = (offset + index // len(MODELS)) % 1_000_000
    vin = with_check_digit(f"{model.vin_prefix}0{year_code(year)}{model.plant}{serial:06d}")
    return SimCar(vin, model, year)


def sim_vin(owner_email: str, index: int) -> str:
    return sim_car(owner_email, index).vin


def model_for_vin(vin: str) -> CarModel:
    """The model a simulated VIN was made for; any other VIN drives as the first model."""
    return _BY_PREFIX.get(vin[:8].upper(), MODELS[0])
