"""Every safety event name, declared once (snake_case, past tense), and the car's event types.

Bus events carry an idempotency key built from what caused them (`<what>:<VIN>:<seq>` for
a car's message, `<what>:<id>:<n>` for a person's action), so the outbox drops repeats.
"""

from typing import Final

CRASH_DETECTED: Final = "crash_detected"
INCIDENT_OPENED: Final = "incident_opened"
INCIDENT_ACKNOWLEDGED: Final = "incident_acknowledged"
INCIDENT_DISPATCHED: Final = "incident_dispatched"
INCIDENT_CLOSED: Final = "incident_closed"
INCIDENT_CANCELLED: Final = "incident_cancelled"
INCIDENT_NOTE_ADDED: Final = "incident_note_added"
ROADSIDE_REQUESTED: Final = "roadside_requested"
ROADSIDE_ASSIGNED: Final = "roadside_assigned"
ROADSIDE_EN_ROUTE: Final = "roadside_en_route"
ROADSIDE_RESOLVED: Final = "roadside_resolved"
ROADSIDE_CANCELLED: Final = "roadside_cancelled"
VEHICLE_REPORTED_STOLEN: Final = "vehicle_reported_stolen"
STOLEN_VEHICLE_MOVED: Final = "stolen_vehicle_moved"
IMMOBILISE_REQUESTED: Final = "immobilise_requested"
VEHICLE_RECOVERED: Final = "vehicle_recovered"
UNAUTHORISED_MOVEMENT_DETECTED: Final = "unauthorised_movement_detected"

ALL_EVENTS: Final = (
    CRASH_DETECTED,
    INCIDENT_OPENED,
    INCIDENT_ACKNOWLEDGED,
    INCIDENT_DISPATCHED,
    INCIDENT_CLOSED,
    INCIDENT_CANCELLED,
    INCIDENT_NOTE_ADDED,
    ROADSIDE_REQUESTED,
    ROADSIDE_ASSIGNED,
    ROADSIDE_EN_ROUTE,
    ROADSIDE_RESOLVED,
    ROADSIDE_CANCELLED,
    VEHICLE_REPORTED_STOLEN,
    STOLEN_VEHICLE_MOVED,
    IMMOBILISE_REQUESTED,
    VEHICLE_RECOVERED,
    UNAUTHORISED_MOVEMENT_DETECTED,
)

# Event types a car may publish on its `events` topic (docs/protocol.md §4.2.1).
CAR_CRASH_TYPES: Final = frozenset({"crash", "crash_detected"})
CAR_CRASH_CANCELLED: Final = "crash_cancelled"
CAR_ROADSIDE_REQUESTED: Final = "roadside_requested"

# Signals the detectors read.
SPEED: Final = "Vehicle.Speed"
LATITUDE: Final = "Vehicle.CurrentLocation.Latitude"
LONGITUDE: Final = "Vehicle.CurrentLocation.Longitude"
HEADING: Final = "Vehicle.CurrentLocation.Heading"
ACCEL_LONGITUDINAL: Final = "Vehicle.Acceleration.Longitudinal"
ACCEL_LATERAL: Final = "Vehicle.Acceleration.Lateral"
DRIVER_DOOR_LOCKED: Final = "Vehicle.Cabin.Door.Row1.DriverSide.IsLocked"
POWER_STATE: Final = "Vehicle.LowVoltageSystemState"
