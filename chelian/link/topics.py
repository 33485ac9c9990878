"""The vehicle link's topic grammar: `v1/vehicles/{vin}/{channel}`.

Example:
    telemetry_topic("1M8GDM9AXKP042788")       # "v1/vehicles/1M8GDM9AXKP042788/telemetry"
    parse_topic("v1/vehicles/1M8.../events")   # ("1M8...", "events")
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = "v1"
ROOT: Final = f"{PROTOCOL_VERSION}/vehicles"

TELEMETRY: Final = "telemetry"  # car -> cloud, QoS 1
EVENTS: Final = "events"  # car -> cloud, QoS 1
STATUS: Final = "status"  # car -> cloud, retained; last will says offline
COMMANDS: Final = "commands"  # cloud -> car, QoS 1
ACKS: Final = "acks"  # car -> cloud, QoS 1
CHANNELS: Final = (TELEMETRY, EVENTS, STATUS, COMMANDS, ACKS)
CAR_PUBLISHES: Final = (TELEMETRY, EVENTS, STATUS, ACKS)
CAR_SUBSCRIBES: Final = (COMMANDS,)


def vehicle_topic(vin: str, channel: str) -> str:
    return f"{ROOT}/{vin}/{channel}"


def telemetry_topic(vin: str) -> str:
    return vehicle_topic(vin, TELEMETRY)


def all_vehicles(channel: str) -> str:
    """The wildcard filter the cloud subscribes with, e.g. `v1/vehicles/+/telemetry`."""
    return f"{ROOT}/+/{channel}"


def shared(filter_: str, group: str) -> str:
    """An MQTT 5 shared subscription: the broker hands each message to one group member."""
    return f"$share/{group}/{filter_}"


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(vin, channel) for a vehicle-link topic, or None if the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3] not in CHANNELS:
        return None
    return parts[2], parts[3]
