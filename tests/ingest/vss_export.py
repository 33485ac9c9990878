"""A tiny VSS JSON export in the same shape as `vss-tools` output (../shared/data/vss/vss.json),
for tests that extend the signal catalog without needing the real spec files."""

from __future__ import annotations

import json
from pathlib import Path

EXTENSION_SIGNAL = "Vehicle.ADAS.CruiseControl.SpeedSet"
"""In the export but not in chelian's built-in catalog."""
EXTENSION_FLAG = "Vehicle.ADAS.ABS.IsEngaged"

TREE = {
    "Vehicle": {
        "description": "High-level vehicle data.",
        "type": "branch",
        "children": {
            "ADAS": {
                "description": "All Advanced Driver Assist Systems data.",
                "type": "branch",
                "children": {
                    "ABS": {
                        "description": "Antilock Braking System signals.",
                        "type": "branch",
                        "children": {
                            "IsEngaged": {"datatype": "boolean", "type": "sensor",
                                          "description": "Whether ABS is regulating brake pressure."},
                        },
                    },
                    "CruiseControl": {
                        "description": "Signals from Cruise Control system.",
                        "type": "branch",
                        "children": {
                            "SpeedSet": {"datatype": "float", "type": "actuator", "unit": "km/h",
                                         "description": "Set cruise control speed in kilometers per hour."},
                        },
                    },
                },
            },
            "Speed": {"datatype": "float", "type": "sensor", "unit": "km/h", "description": "Vehicle speed."},
        },
    },
}


def write_vss_export(path: Path) -> Path:
    path.write_text(json.dumps(TREE, indent=2))
    return path
