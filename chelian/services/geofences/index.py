"""All active fences in one shapely STRtree, so a fix only meets the fences near it.

The tree holds each fence's bounding box grown by the hysteresis margin; a batch's fixes are
queried in one vectorised call (`STRtree.query` over an array of points returns the
(fix, fence) pairs whose boxes contain the point), so the cost per message grows with the
number of fences *near* the car, not with the number of fences. Exact distances are then
computed only for those candidates.

The tree is immutable: when fences change it is rebuilt whole (10 000 boxes: ~40 ms; parsing
is paid only for new fences, ~50 us each), which `refresh` notices by polling the table's
(count, max id) at most every `poll_s`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import shapely
from sqlalchemy import Engine

from chelian.services.geofences.shapes import CIRCLE, Fence, circle, expanded_bounds, polygon
from chelian.storage.repositories import geofences as repo
from chelian.storage.repositories.geofences import GeofenceRow


def fence_from_row(row: GeofenceRow) -> Fence:
    if row.kind == CIRCLE:
        return circle(row.id, owner_id=row.owner_id, vehicle_id=row.vehicle_id, name=row.name,
                      lat=float(row.center_lat or 0), lon=float(row.center_lon or 0),
                      radius_m=float(row.radius_m or 0))
    return polygon(row.id, owner_id=row.owner_id, vehicle_id=row.vehicle_id, name=row.name,
                   geometry=row.geometry or {})


class FenceIndex:
    def __init__(self, engine: Engine, margin_m: float, poll_s: float = 2.0) -> None:
        self.engine = engine
        self.margin_m = margin_m
        self.poll_s = poll_s
        self.by_id: dict[int, Fence] = {}
        self._fences: list[Fence] = []
        self._tree: shapely.STRtree | None = None
        self._version: tuple[int, int] | None = None
        self._checked = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Rebuild if fences were added or removed since the last build; True if it did."""
        now = time.monotonic()
        if not force and now - self._checked < self.poll_s:
            return False
        self._checked = now
        with self.engine.connect() as conn:
            version = repo.version(conn)
            if version == self._version and not force:
                return False
            rows = repo.all_fences(conn)
        known = self.by_id  # fences are immutable (no update endpoint): only new rows are parsed
        self.build([known.get(r.id) or fence_from_row(r) for r in rows])
        self._version = version
        return True

    def build(self, fences: Sequence[Fence]) -> None:
        self._fences = list(fences)
        self.by_id = {f.id: f for f in self._fences}
        if not self._fences:
            self._tree = None
            return
        boxes = np.array([expanded_bounds(f, self.margin_m) for f in self._fences])
        self._tree = shapely.STRtree(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))

    def candidates(self, lats: Sequence[float], lons: Sequence[float]) -> list[list[Fence]]:
        """For each fix, the fences whose grown box contains it."""
        out: list[list[Fence]] = [[] for _ in lats]
        if self._tree is None or not out:
            return out
        fix_idx, fence_idx = self._tree.query(shapely.points(np.asarray(lons), np.asarray(lats)))
        fences = self._fences
        for i, j in zip(fix_idx.tolist(), fence_idx.tolist(), strict=True):
            out[i].append(fences[j])
        return out
