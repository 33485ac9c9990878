"""Request dependencies: the platform objects, the caller, their car, and parsed query values.

Everything a route needs arrives as an `Annotated` alias (EngineDep, ConnDep, CurrentUser,
OwnedVehicle, ...), so routes stay a few lines and every per-car route gets its access check
the same way. The platform objects live on `app.state` (set by `create_app`), never in
module globals, so several apps can live in one process (tests do).

"Your car" means a car you may use: one you own, or one in a fleet you operate (the one
rule, `vehicles.access_clause`). The few things only the legal owner may do (re-pinning the
car's key) take `LegalOwnerVehicle` instead. Both answer 404 for anyone else's car, never
403: a stranger must not learn that a VIN is registered.

No `from __future__ import annotations` here: FastAPI must evaluate the `Annotated`
parameters of the `time_window` closure, which refer to its local variables.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import Connection, Engine

from chelian.config import Settings
from chelian.errors import NotFoundError, ValidationError
from chelian.metrics import Metrics
from chelian.services.accounts.signup import user_for_token
from chelian.signals import Catalog, Signal
from chelian.storage.db import now_ms
from chelian.storage.repositories import vehicles
from chelian.storage.repositories.users import User
from chelian.storage.repositories.vehicles import Vehicle

API_PREFIX = "/api/v1"
"""Routers carry the full prefix themselves (not `include_router(prefix=)`), so a matched
route's `path` is the whole template, which the request counter uses as its label."""
TOKEN_URL = f"{API_PREFIX}/auth/token"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def get_conn(engine: EngineDep) -> Iterator[Connection]:
    """One read connection per request, returned to the pool when the request is done."""
    with engine.connect() as conn:
        yield conn


ConnDep = Annotated[Connection, Depends(get_conn)]

# Missing token: FastAPI answers 401 with `WWW-Authenticate: Bearer` itself.
# Wrong or expired token: user_for_token raises AuthError, which the app maps to the same.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL)


def current_user(engine: EngineDep, token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    return user_for_token(engine, token)


CurrentUser = Annotated[User, Depends(current_user)]


def owned_vehicle(vin: str, user: CurrentUser, conn: ConnDep) -> Vehicle:
    """The car if the caller owns it or operates its fleet, else 404.

    Named for what it was before fleets ("owned" = yours to read and command); renaming it
    would touch every per-car route for no change in behaviour."""
    vehicle = vehicles.accessible(conn, user.id, vin.strip().upper())
    if vehicle is None:
        raise NotFoundError(f"no vehicle {vin} in your account")
    return vehicle


OwnedVehicle = Annotated[Vehicle, Depends(owned_vehicle)]


def legal_owner_vehicle(vin: str, user: CurrentUser, conn: ConnDep) -> Vehicle:
    """The car only if the caller is its legal owner (not merely its fleet's operator), else 404."""
    vehicle = vehicles.owned(conn, user.id, vin.strip().upper())
    if vehicle is None:
        raise NotFoundError(f"no vehicle {vin} of which you are the owner")
    return vehicle


LegalOwnerVehicle = Annotated[Vehicle, Depends(legal_owner_vehicle)]


def known_signal(path: str, catalog: CatalogDep) -> Signal:
    signal = catalog.get(path)
    if signal is None:
        raise NotFoundError(f"unknown signal {path}: not in the signal catalog")
    return signal


KnownSignal = Annotated[Signal, Depends(known_signal)]


# --- time windows ---------------------------------------------------------------------

_INSTANT_HELP = "ISO-8601 (2024-05-01T12:00:00Z; no zone means UTC) or epoch milliseconds"


def parse_instant(raw: str, name: str) -> int:
    """Epoch ms from ISO-8601 or an epoch-ms integer; ValidationError (400) with the reason."""
    text = raw.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    # An unescaped "+01:00" in a query string arrives as " 01:00".
    text = text.replace(" ", "+") if re.search(r"T.* \d\d:?\d\d$", text) else text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name} must be {_INSTANT_HELP}, got {raw!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    start_ms: int
    end_ms: int


def time_window(default_span_ms: int, span_text: str):  # type: ignore[no-untyped-def]
    """A dependency reading `start`/`end`; missing `end` is now, missing `start` is end - span."""

    def window(
        start: Annotated[str | None,
                         Query(description=f"{_INSTANT_HELP}; default: {span_text} before end")] = None,
        end: Annotated[str | None, Query(description=f"{_INSTANT_HELP}; default: now")] = None,
    ) -> Window:
        end_ms = parse_instant(end, "end") if end is not None else now_ms()
        start_ms = parse_instant(start, "start") if start is not None else end_ms - default_span_ms
        if end_ms < start_ms:
            raise ValidationError("end must not be before start")
        return Window(start_ms, end_ms)

    return window


HistoryWindow = Annotated[Window, Depends(time_window(HOUR_MS, "one hour"))]
EventsWindow = Annotated[Window, Depends(time_window(7 * DAY_MS, "seven days"))]


# --- downsampling interval ------------------------------------------------------------

_UNIT_MS = {"s": 1000, "m": 60_000, "h": HOUR_MS, "d": DAY_MS}


@dataclass(frozen=True, slots=True)
class Every:
    text: str
    ms: int


def parse_every(raw: str) -> Every:
    match = re.fullmatch(r"(\d{1,9})([smhd])", raw.strip())
    if match is None or int(match[1]) == 0:
        raise ValidationError(f"every must be a positive number and a unit s, m, h or d (10s, 1m, 5m, 1h), "
                              f"got {raw!r}")
    return Every(f"{int(match[1])}{match[2]}", int(match[1]) * _UNIT_MS[match[2]])


def every_param(
    every: Annotated[str | None, Query(description="Bucket size (10s, 1m, 5m, 1h, 1d) for avg/min/max/count "
                                                   "per bucket; leave out for raw samples")] = None,
) -> Every | None:
    return parse_every(every) if every is not None else None


EveryParam = Annotated[Every | None, Depends(every_param)]
