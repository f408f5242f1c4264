"""Subscription areas: a bbox or a set of H3 cells, matched against a change's point or bbox.

Pure: no I/O. A change without a location (``lon``/``lat`` and ``bbox`` both None) is visible in
every area.
"""

from __future__ import annotations

from dataclasses import dataclass

import h3.api.basic_int as h3i

BBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Area:
    bbox: BBox | None = None
    """(min_lon, min_lat, max_lon, max_lat), or None."""
    cells: frozenset[int] | None = None
    """H3 cells (any mix of resolutions), or None."""
    envelope: BBox | None = None
    """A bbox covering the area (for SQL pre-filtering); None means the whole world."""

    @property
    def everywhere(self) -> bool:
        return self.bbox is None and self.cells is None

    @property
    def resolutions(self) -> tuple[int, ...]:
        if not self.cells:
            return ()
        return tuple(sorted({h3i.get_resolution(c) for c in self.cells}))

    def key(self) -> tuple[object, ...]:
        return ("bbox", self.bbox) if self.bbox else ("cells", self.cells) if self.cells else ("all",)

    def contains_point(self, lon: float, lat: float, cells_at: dict[int, int] | None = None) -> bool:
        if self.bbox is not None:
            b = self.bbox
            return b[0] <= lon <= b[2] and b[1] <= lat <= b[3]
        if self.cells is not None:
            env = self.envelope
            if env is not None and not (env[0] <= lon <= env[2] and env[1] <= lat <= env[3]):
                return False
            for res in self.resolutions:
                cell = cells_at.get(res) if cells_at is not None else None
                if cell is None:
                    cell = int(h3i.latlng_to_cell(lat, lon, res))
                    if cells_at is not None:
                        cells_at[res] = cell
                if cell in self.cells:
                    return True
            return False
        return True

    def intersects_bbox(self, other: BBox) -> bool:
        env = self.bbox or self.envelope
        if env is None:
            return True
        return not (other[2] < env[0] or other[0] > env[2] or other[3] < env[1] or other[1] > env[3])

    def matches(
        self,
        lon: float | None,
        lat: float | None,
        bbox: BBox | None,
        cells_at: dict[int, int] | None = None,
    ) -> bool:
        """Does a change located at ``lon, lat`` (or covering ``bbox``) concern this area?"""
        if self.everywhere:
            return True
        if lon is not None and lat is not None:
            return self.contains_point(lon, lat, cells_at)
        if bbox is not None:
            return self.intersects_bbox(bbox)
        return True


def cells_envelope(cells: frozenset[int]) -> BBox:
    """A bbox covering every cell's boundary (slightly padded)."""
    lons: list[float] = []
    lats: list[float] = []
    for cell in cells:
        for lat, lon in h3i.cell_to_boundary(cell):
            lons.append(lon)
            lats.append(lat)
    pad = 1e-6
    return (min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad)
