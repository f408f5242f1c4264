"""H3 coverings of polygons: interior cells (hit without an exact test) and boundary cells.

A :class:`PolygonCover` holds every H3 cell (at one resolution chosen from the polygon's size) that any
point of the polygon can fall in. Cells whose hexagon lies inside the polygon with a small safety
margin are *interior*: a point in them is inside, no exact test needed. The rest are *boundary*: a
point in them gets the exact (vectorised) shapely test. A point whose cell is in neither set is outside.

The margin covers the difference between H3's true cell (bounded by great-circle arcs) and the
hexagon drawn with straight lon/lat edges, so the result equals ``shapely.contains_xy`` on the polygon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo.antimeridian import has_jump, polygonal_parts, split_unwrapped, unwrap_lons
from geo.geodesy import geodesic_area_m2, geodesic_perimeter_m, metres_per_degree
from geo.h3index import cells_for, edge_length_m, hexagon_area_m2

MIN_RES = 5
MAX_RES = 10
TARGET_CELLS = 600
"""Default cell budget per cover; the finest resolution whose estimated count fits is chosen."""
MAX_CELLS = 250_000
MARGIN_FRACTION = 0.01
"""Safety margin as a fraction of the cell edge (the arc-vs-chord gap is far below 0.1%)."""


def choose_res(
    geom: BaseGeometry, *, target_cells: int = TARGET_CELLS, min_res: int = MIN_RES, max_res: int = MAX_RES
) -> int:
    """Finest resolution in ``[min_res, max_res]`` whose estimated covering fits ``target_cells``."""
    area = geodesic_area_m2(geom)
    perimeter = geodesic_perimeter_m(geom)
    for res in range(max_res, min_res - 1, -1):
        estimate = area / hexagon_area_m2(res) + 2.0 * perimeter / (1.5 * edge_length_m(res))
        if estimate <= target_cells:
            return res
    return min_res


def _hexagons(cells: list[int]) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """Planar lon/lat polygons of cells (antimeridian cells split); second array flags polar cells."""
    geoms = np.empty(len(cells), dtype=object)
    polar = np.zeros(len(cells), dtype=bool)
    coords: list[tuple[float, float]] = []
    offsets: list[int] = []
    simple_idx: list[int] = []
    for i, cell in enumerate(cells):
        ring = [(lon, lat) for lat, lon in h3i.cell_to_boundary(cell)]
        lons = [p[0] for p in ring]
        if max(lons) - min(lons) > 180.0 and has_jump([*lons, lons[0]]):
            unwrapped = unwrap_lons([*lons, lons[0]])
            if abs(unwrapped[-1] - unwrapped[0]) > 1e-9:
                polar[i] = True  # contains a pole: always treated as a boundary cell
                continue
            geoms[i] = split_unwrapped(Polygon(list(zip(unwrapped[:-1].tolist(), [p[1] for p in ring], strict=True))))
            continue
        simple_idx.append(i)
        offsets.append(len(ring) + 1)
        coords.extend(ring)
        coords.append(ring[0])
    if simple_idx:
        ring_ids = np.repeat(np.arange(len(simple_idx)), offsets)
        rings = shapely.linearrings(np.asarray(coords, dtype=np.float64), indices=ring_ids)
        geoms[np.asarray(simple_idx)] = shapely.polygons(rings)
    return geoms, polar


def _seed_cells(parts: list[Polygon], res: int) -> set[int]:
    """H3's own overlap polyfill plus the cells of every exterior vertex (for tiny polygons)."""
    seed: set[int] = set()
    for part in parts:
        ext = np.asarray(part.exterior.coords)[:, :2]
        holes = [[(float(y), float(x)) for x, y in np.asarray(r.coords)[:, :2]] for r in part.interiors]
        shape = h3i.LatLngPoly([(float(y), float(x)) for x, y in ext], *holes)
        seed.update(int(c) for c in h3i.h3shape_to_cells_experimental(shape, res, contain="overlap"))
        seed.update(cells_for(ext[:, 0], ext[:, 1], res).tolist())
    return seed


def classify_cells(
    geom: BaseGeometry, res: int, *, max_cells: int = MAX_CELLS
) -> tuple[frozenset[int], frozenset[int]]:
    """``(interior, boundary)`` cells of ``geom`` at ``res``. Raises ValueError past ``max_cells``."""
    parts = polygonal_parts(geom)
    if not parts:
        return frozenset(), frozenset()
    estimate = geodesic_area_m2(geom) / hexagon_area_m2(res)
    if estimate > max_cells:
        raise ValueError(f"covering needs about {int(estimate)} cells at res {res} (max {max_cells})")
    min_lat, max_lat = geom.bounds[1], geom.bounds[3]
    worst_lat = min(max(abs(min_lat), abs(max_lat)), 89.0)
    eps_deg = MARGIN_FRACTION * edge_length_m(res) / metres_per_degree(worst_lat)[0]
    inner = shapely.buffer(geom, -eps_deg, quad_segs=2)
    outer = shapely.buffer(geom, eps_deg, quad_segs=2)
    shapely.prepare(inner)
    shapely.prepare(outer)

    interior: set[int] = set()
    boundary: set[int] = set()
    seen: set[int] = set()
    todo = _seed_cells(parts, res)
    for _round in range(2):  # seed, then the neighbours of boundary cells
        batch = sorted(todo - seen)
        if not batch:
            break
        seen.update(batch)
        hexes, polar = _hexagons(batch)
        ok = ~polar
        is_in = np.zeros(len(batch), dtype=bool)
        touches = polar.copy()
        if ok.any():
            is_in[ok] = shapely.contains_properly(inner, hexes[ok]) if not inner.is_empty else False
            touches[ok] = shapely.intersects(outer, hexes[ok])
        new_boundary: list[int] = []
        for cell, inside, touch in zip(batch, is_in.tolist(), touches.tolist(), strict=True):
            if inside:
                interior.add(cell)
            elif touch:
                boundary.add(cell)
                new_boundary.append(cell)
        if len(interior) + len(boundary) > max_cells:
            raise ValueError(f"covering needs more than {max_cells} cells at res {res}")
        todo = {int(n) for c in new_boundary for n in h3i.grid_disk(c, 1)}
    return frozenset(interior), frozenset(boundary)


class PolygonCover:
    """Covering of a Polygon/MultiPolygon by H3 cells at one resolution, with a vectorised ``contains``."""

    __slots__ = ("_boundary_arr", "_interior_arr", "boundary", "geometry", "interior", "res")

    def __init__(
        self,
        geometry: BaseGeometry,
        *,
        res: int | None = None,
        target_cells: int = TARGET_CELLS,
        min_res: int = MIN_RES,
        max_res: int = MAX_RES,
        max_cells: int = MAX_CELLS,
    ) -> None:
        if not polygonal_parts(geometry):
            raise ValueError("PolygonCover needs a non-empty Polygon or MultiPolygon")
        self.geometry: BaseGeometry = geometry
        shapely.prepare(self.geometry)
        self.res: int = (
            res
            if res is not None
            else choose_res(geometry, target_cells=target_cells, min_res=min_res, max_res=max_res)
        )
        self.interior, self.boundary = classify_cells(geometry, self.res, max_cells=max_cells)
        self._interior_arr = np.fromiter(sorted(self.interior), dtype=np.int64, count=len(self.interior))
        self._boundary_arr = np.fromiter(sorted(self.boundary), dtype=np.int64, count=len(self.boundary))

    @classmethod
    def from_cells(cls, geometry: BaseGeometry, interior: Iterable[int], boundary: Iterable[int]) -> PolygonCover:
        """The cover of ``geometry`` from cells classified earlier for this same geometry (for example
        the stored ``hazard_cells``), without classifying again. ValueError when there are no cells or
        they are not all of one resolution."""
        self = cls.__new__(cls)
        self.interior = frozenset(int(c) for c in interior)
        self.boundary = frozenset(int(c) for c in boundary)
        resolutions = {h3i.get_resolution(c) for c in self.interior | self.boundary}
        if len(resolutions) != 1:
            raise ValueError(f"cells must share one resolution (got {sorted(resolutions)})")
        self.res = resolutions.pop()
        self.geometry = geometry
        shapely.prepare(self.geometry)
        self._interior_arr = np.fromiter(sorted(self.interior), dtype=np.int64, count=len(self.interior))
        self._boundary_arr = np.fromiter(sorted(self.boundary), dtype=np.int64, count=len(self.boundary))
        return self

    def __len__(self) -> int:
        return len(self.interior) + len(self.boundary)

    def cells(self) -> Iterator[tuple[int, bool]]:
        """``(cell, interior)`` pairs at ``self.res``."""
        for c in self.interior:
            yield c, True
        for c in self.boundary:
            yield c, False

    def cells_at(self, res: int, *, max_cells: int = MAX_CELLS) -> list[tuple[int, int, bool]]:
        """Rows ``(cell, res, interior)`` for ``hazard_cells`` at any resolution (recomputed when it differs).

        H3 children do not tile their parent exactly, so other resolutions are classified afresh rather
        than derived from this cover's cells.
        """
        if res == self.res:
            interior, boundary = self.interior, self.boundary
        else:
            interior, boundary = classify_cells(self.geometry, res, max_cells=max_cells)
        rows = [(c, res, True) for c in sorted(interior)]
        rows.extend((c, res, False) for c in sorted(boundary))
        return rows

    def classify(self, cells: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Masks ``(in_interior_cell, in_boundary_cell)`` for cells at ``self.res``."""
        return np.isin(cells, self._interior_arr), np.isin(cells, self._boundary_arr)

    def contains(self, lons: npt.ArrayLike, lats: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Point-in-polygon for many points: cell sets first, exact ``contains_xy`` on boundary cells only."""
        lon_arr = np.asarray(lons, dtype=np.float64).ravel()
        lat_arr = np.asarray(lats, dtype=np.float64).ravel()
        if lon_arr.size == 0:
            return np.zeros(0, dtype=bool)
        cells = cells_for(lon_arr, lat_arr, self.res)
        result, on_boundary = self.classify(cells)
        idx = np.flatnonzero(on_boundary)
        if idx.size:
            result[idx] = shapely.contains_xy(self.geometry, lon_arr[idx], lat_arr[idx])
        return result


class CoverIndex:
    """Many covers indexed by cell, for candidate (point, cover) pairs from set lookups.

    Keys are small ints chosen by the caller (e.g. fence slots). Each cell maps to a list of packed
    ``key << 1 | interior`` entries, so updating one cover touches only its own cells.
    """

    def __init__(self) -> None:
        self._by_cell: dict[int, list[int]] = {}
        self._covers: dict[int, PolygonCover] = {}
        self._res_count: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._covers)

    @property
    def resolutions(self) -> list[int]:
        return sorted(r for r, n in self._res_count.items() if n > 0)

    def add(self, key: int, cover: PolygonCover) -> None:
        if key in self._covers:
            self.remove(key)
        self._covers[key] = cover
        self._res_count[cover.res] = self._res_count.get(cover.res, 0) + 1
        by_cell = self._by_cell
        for cell, interior in cover.cells():
            by_cell.setdefault(cell, []).append(key << 1 | int(interior))

    def remove(self, key: int) -> None:
        cover = self._covers.pop(key, None)
        if cover is None:
            return
        self._res_count[cover.res] -= 1
        by_cell = self._by_cell
        for cell, interior in cover.cells():
            entries = by_cell.get(cell)
            if entries is None:
                continue
            packed = key << 1 | int(interior)
            if packed in entries:
                entries.remove(packed)
            if not entries:
                del by_cell[cell]

    def candidates(
        self, lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Candidate pairs ``(point_index, key, interior)`` for points against every indexed cover."""
        pts: list[int] = []
        keys: list[int] = []
        by_cell = self._by_cell
        for res in self.resolutions:
            cells = cells_for(lons, lats, res)
            uniq, inverse = np.unique(cells, return_inverse=True)
            hits = [(j, by_cell[c]) for j, c in enumerate(uniq.tolist()) if c in by_cell]
            if not hits:
                continue
            hit_of_uniq = {j: entries for j, entries in hits}
            for i, j in enumerate(inverse.tolist()):
                entries = hit_of_uniq.get(j)
                if entries is not None:
                    pts.extend([i] * len(entries))
                    keys.extend(entries)
        packed = np.asarray(keys, dtype=np.int64)
        return np.asarray(pts, dtype=np.int64), packed >> 1, (packed & 1).astype(bool)

    def cover(self, key: int) -> PolygonCover:
        return self._covers[key]
