"""Stolen-vehicle assistance: report, follow the track, immobilise, report recovered."""

from __future__ import annotations

from fastapi import APIRouter, status

from chelian.api.deps import API_PREFIX, CurrentUser, OwnedVehicle
from chelian.api.routes.safety_deps import SafetyDep
from chelian.api.schemas.safety import NoteIn, StolenReportPublic

router = APIRouter(prefix=f"{API_PREFIX}/vehicles", tags=["stolen"])

NOT_YOURS = {404: {"description": "Not one of your cars, or not reported stolen"}}


@router.post(
    "/{vin}/stolen",
    status_code=status.HTTP_201_CREATED,
    response_model=StolenReportPublic,
    responses={**NOT_YOURS, 409: {"description": "Already reported stolen"}},
)
def report_stolen(
    vehicle: OwnedVehicle, user: CurrentUser, safety: SafetyDep, body: NoteIn | None = None
) -> StolenReportPublic:
    """From now on the car reports its position at high rate (a signed `set_tracking`), every
    position it sends is kept in the report's track, and moves are alerted."""
    report = safety.theft.report(vehicle, user.id, body.note if body else None)
    return StolenReportPublic.of(report, [], safety.theft.tracking_commands(report))


@router.get("/{vin}/stolen", response_model=StolenReportPublic, responses=NOT_YOURS)
def read_stolen(vehicle: OwnedVehicle, safety: SafetyDep) -> StolenReportPublic:
    """The latest report (active or recovered) with every position received while it was active."""
    report, track = safety.theft.current(vehicle)
    return StolenReportPublic.of(report, track, safety.theft.tracking_commands(report))


@router.post("/{vin}/stolen/immobilise", response_model=StolenReportPublic, responses=NOT_YOURS)
def immobilise(vehicle: OwnedVehicle, user: CurrentUser, safety: SafetyDep) -> StolenReportPublic:
    """Sends a signed `immobilise` command (the car obeys once stationary).

    Asking again creates no second command."""
    safety.theft.immobilise(vehicle, user.id)
    return read_stolen(vehicle, safety)


@router.post("/{vin}/stolen/recovered", response_model=StolenReportPublic, responses=NOT_YOURS)
def recovered(vehicle: OwnedVehicle, safety: SafetyDep, body: NoteIn | None = None) -> StolenReportPublic:
    """Closes the report and returns the car to its normal reporting rate (`set_tracking`, 0 s)."""
    safety.theft.recover(vehicle, body.note if body else None)
    return read_stolen(vehicle, safety)
