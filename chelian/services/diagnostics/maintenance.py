"""Maintenance reminders: a plan is due by distance OR by time, whichever comes first.

Distance comes from the odometer (`Vehicle.TraveledDistance`, metres); a plan without a
recorded odometer at its last service is due by time only. `remaining` is what the API shows
("2 100 km or 41 days left"); `maintenance_due` is raised once per service interval (the
plan's `notified_ms` is cleared when the owner records the service as done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chelian.storage.repositories.dtcs import Plan

DAY_MS: Final = 86_400_000
ODOMETER: Final = "Vehicle.TraveledDistance"


@dataclass(frozen=True, slots=True)
class Reminder:
    plan: Plan
    km_left: float | None
    days_left: float | None

    @property
    def due(self) -> bool:
        return (self.km_left is not None and self.km_left <= 0) or (self.days_left is not None
                                                                     and self.days_left <= 0)

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.km_left is not None and self.km_left <= 0:
            out.append("distance")
        if self.days_left is not None and self.days_left <= 0:
            out.append("time")
        return out


def remaining(plan: Plan, odometer_m: float | None, now_ms: int) -> Reminder:
    km_left = None
    if plan.every_km is not None and plan.last_done_km is not None and odometer_m is not None:
        km_left = plan.last_done_km + plan.every_km - odometer_m / 1000
    days_left = None
    if plan.every_days is not None:
        days_left = (plan.last_done_ms + plan.every_days * DAY_MS - now_ms) / DAY_MS
    return Reminder(plan, km_left, days_left)
