"""A simulated car's trouble codes are cleared by the clear_dtcs actuator."""

from chelian.sim.grid import StreetGrid
from chelian.sim.models import MODELS
from chelian.sim.source import SimActuators, SimSignalSource
from chelian.sim.vehicle import SimVehicle


def test_clear_dtcs_empties_the_reported_list():
    vehicle = SimVehicle(MODELS[0], StreetGrid.generate(42.28, -83.74, seed=1), seed=1)
    source = SimSignalSource(vehicle)
    vehicle.controls.raise_dtc("P0301")
    vehicle.controls.raise_dtc("P0420")
    assert vehicle.step(1.0)["Vehicle.Diagnostics.DTCList"] == ["P0301", "P0420"]
    SimActuators(source).clear_dtcs()
    assert vehicle.step(1.0)["Vehicle.Diagnostics.DTCList"] == []
