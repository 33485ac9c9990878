"""A generated street grid around a home point: the demo's stand-in for real roads.

Irregular block lengths and a slight rotation keep the tracks on a map from looking like
graph paper; every third street is an avenue with a higher speed limit and traffic lights,
the rest are residential streets with stop signs. Everything follows from the seed, so two
runs with the same seed draw the same city.

Example:
    grid = StreetGrid.generate(42.2808, -83.7430, seed=7)
    grid.neighbours(grid.centre_node())   # the four intersections around the centre
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

from chelian.sim.roads import LocalProjection, Point

KMH = 1 / 3.6
AVENUE_EVERY = 3
SPEED_LIMIT_MS = {True: 60 * KMH, False: 40 * KMH}
"""Keyed by "is this segment on an avenue"."""
STOP_PROBABILITY = {0: 0.55, 1: 0.3, 2: 0.5}
"""Keyed by how many avenues cross at the node: stop signs on residential crossings, mostly
green on an avenue crossing a side street, lights where two avenues meet."""


@dataclass(frozen=True)
class StreetGrid:
    """`cols` x `rows` intersections; node id = row * cols + col."""

    projection: LocalProjection
    cols: int
    rows: int
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    rotation_rad: float
    _positions: tuple[Point, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cos, sin = math.cos(self.rotation_rad), math.sin(self.rotation_rad)
        rows_then_cols = itertools.product(self.ys, self.xs)
        positions = tuple((x * cos - y * sin, x * sin + y * cos) for y, x in rows_then_cols)
        object.__setattr__(self, "_positions", positions)

    @classmethod
    def generate(cls, lat: float, lon: float, seed: int, *, blocks: int = 12, min_block_m: float = 110,
                 max_block_m: float = 230, max_rotation_deg: float = 20) -> StreetGrid:
        """A (blocks+1) x (blocks+1) grid centred on (lat, lon)."""
        rng = random.Random(f"grid:{seed}")

        def axis() -> tuple[float, ...]:
            cuts = list(itertools.accumulate(rng.uniform(min_block_m, max_block_m) for _ in range(blocks)))
            offsets = [0.0, *cuts]
            middle = offsets[len(offsets) // 2]
            return tuple(o - middle for o in offsets)

        xs, ys = axis(), axis()
        rotation = math.radians(rng.uniform(-max_rotation_deg, max_rotation_deg))
        return cls(LocalProjection(lat, lon), len(xs), len(ys), xs, ys, rotation)

    def nodes(self) -> range:
        return range(self.cols * self.rows)

    def centre_node(self) -> int:
        return (self.rows // 2) * self.cols + self.cols // 2

    def position(self, node: int) -> Point:
        return self._positions[node]

    def neighbours(self, node: int) -> list[int]:
        row, col = divmod(node, self.cols)
        steps = ((0, 1), (1, 0), (0, -1), (-1, 0))  # north, east, south, west
        return [(row + dr) * self.cols + col + dc for dr, dc in steps
                if 0 <= row + dr < self.rows and 0 <= col + dc < self.cols]

    def _on_avenue(self, a: int, b: int) -> bool:
        (ra, ca), (rb, _) = divmod(a, self.cols), divmod(b, self.cols)
        return ra % AVENUE_EVERY == 0 if ra == rb else ca % AVENUE_EVERY == 0

    def speed_limit_ms(self, a: int, b: int) -> float:
        return SPEED_LIMIT_MS[self._on_avenue(a, b)]

    def stop_probability(self, node: int) -> float:
        row, col = divmod(node, self.cols)
        return STOP_PROBABILITY[(row % AVENUE_EVERY == 0) + (col % AVENUE_EVERY == 0)]
