"""H3 coverings of polygons: interior cells (hit without an exact test) and boundary cells.

A :class:`PolygonCover` holds every H3 cell (at one resolution chosen from the polygon's size) that any
point of the polygon can fall in. Cells whose hexagon lies inside the polygon with a small safety
margin are *interior*: a point in them is inside, no exact test needed. The rest are *boundary*: a
point in them gets the exact (vectorised) shapely test. A point whose cell is in neither set is outside.

The margin covers the difference between H3's true cell (bounded by great-circle arcs) and the
hexagon drawn with straight lon/lat edges, so the result equals ``shapely.contains_xy`` on the polygon.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon
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
CENTRE_TO_VERTEX_FACTOR = 1.25
"""Bound on the distance from an H3 cell's centre to its hexagon's vertices (planar lon/lat, in metres at
the vertex's latitude) as a multiple of the average edge length at its resolution: at most 1.107 over
16,000 random cells at each resolution 0–12 and every pentagon, plus a margin."""
CENTRE_TO_EDGE_FACTOR = 0.5
"""Bound the other way: the distance from a cell's centre to its hexagon's edges (planar lon/lat, in
metres per degree of latitude) is at least 0.598 of the average edge length (same sample), minus a margin."""
FAST_MAX_LAT = 80.0
"""Above this latitude (or near ±180°) cells are classified by their hexagons only."""
_BUFFER_CHORD = 0.92
"""``buffer(..., quad_segs=2)`` draws arcs with chords no closer than cos(22.5°) = 0.924 of the radius."""


def choose_res(
    geom: BaseGeometry,
    *,
    target_cells: int = TARGET_CELLS,
    min_res: int = MIN_RES,
    max_res: int = MAX_RES,
    area_m2: float | None = None,
) -> int:
    """Finest resolution in ``[min_res, max_res]`` whose estimated covering fits ``target_cells``
    (``area_m2``: the geodesic area when already known)."""
    area = geodesic_area_m2(geom) if area_m2 is None else area_m2
    perimeter = geodesic_perimeter_m(geom)
    for res in range(max_res, min_res - 1, -1):
        estimate = area / hexagon_area_m2(res) + 2.0 * perimeter / (1.5 * edge_length_m(res))
        if estimate <= target_cells:
            return res
    return min_res


def _hexagons(cells: list[int]) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """Planar lon/lat polygons of cells (antimeridian cells split); second array flags polar cells.

    Cells are grouped by vertex count (6, 5 for pentagons, more where a cell's edge crosses an
    icosahedron face) and each group is built with one ``shapely.polygons`` call.
    """
    geoms = np.empty(len(cells), dtype=object)
    polar = np.zeros(len(cells), dtype=bool)
    rings = [h3i.cell_to_boundary(c) for c in cells]
    by_len: dict[int, list[int]] = {}
    for i, ring in enumerate(rings):
        by_len.setdefault(len(ring), []).append(i)
    for n, idx in by_len.items():
        latlon = np.asarray([rings[i] for i in idx], dtype=np.float64).reshape(len(idx), n, 2)
        lonlat = np.empty((len(idx), n + 1, 2), dtype=np.float64)
        lonlat[:, :n, 0] = latlon[:, :, 1]
        lonlat[:, :n, 1] = latlon[:, :, 0]
        lonlat[:, n] = lonlat[:, 0]
        lons = lonlat[:, :, 0]
        wide = lons.max(axis=1) - lons.min(axis=1) > 180.0
        simple = np.asarray(idx)[~wide]
        geoms[simple] = shapely.polygons(lonlat[~wide])
        for j in np.flatnonzero(wide).tolist():
            i, ring_lons, ring_lats = idx[j], lons[j], lonlat[j, :, 1]
            if not has_jump(ring_lons):
                geoms[i] = shapely.polygons(lonlat[j])
                continue
            unwrapped = unwrap_lons(ring_lons)
            if abs(unwrapped[-1] - unwrapped[0]) > 1e-9:
                polar[i] = True  # contains a pole: always treated as a boundary cell
                continue
            geoms[i] = split_unwrapped(
                Polygon(list(zip(unwrapped[:-1].tolist(), ring_lats[:-1].tolist(), strict=True)))
            )
    return geoms, polar


def _seed_cells(parts: list[Polygon], res: int, *, contain: str = "overlap") -> set[int]:
    """H3's own polyfill of ``parts``: ``overlap`` (every cell touching, H3's experimental mode) or
    ``center`` (cells whose centre is inside, tested in planar lon/lat)."""
    seed: set[int] = set()
    for part in parts:
        ext = np.asarray(part.exterior.coords)[:, :2]
        holes = [[(float(y), float(x)) for x, y in np.asarray(r.coords)[:, :2]] for r in part.interiors]
        shape = h3i.LatLngPoly([(float(y), float(x)) for x, y in ext], *holes)
        if contain == "center":
            seed.update(h3i.h3shape_to_cells(shape, res))
        else:
            seed.update(int(c) for c in h3i.h3shape_to_cells_experimental(shape, res, contain=contain))
    return seed


def _grown(poly: BaseGeometry, reach_deg: float) -> BaseGeometry:
    """A polygon holding every point within ``reach_deg`` of ``poly`` (planar lon/lat), cheap to
    build and to polyfill: ``poly`` simplified by half the reach, then buffered by the reach plus
    that tolerance (over :data:`_BUFFER_CHORD`, for the chords of the rounded corners).

    Douglas-Peucker keeps every removed stretch of outline, and so the area it enclosed with the
    new edge, within the tolerance of that edge (topology preserved: no part or hole collapses), so
    every point of ``poly`` lies inside the simplified shape or within the tolerance of it. Buffering
    a detailed outline (a union of counties) costs several times more, for a shape only slightly
    smaller."""
    tolerance = 0.5 * reach_deg
    simple = shapely.simplify(poly, tolerance, preserve_topology=True)
    if simple.is_empty:
        simple = poly
    return shapely.buffer(simple, (reach_deg + tolerance) / _BUFFER_CHORD, quad_segs=2)


def classify_cells(
    geom: BaseGeometry, res: int, *, max_cells: int = MAX_CELLS, area_m2: float | None = None
) -> tuple[frozenset[int], frozenset[int]]:
    """``(interior, boundary)`` cells of ``geom`` at ``res``. Raises ValueError past ``max_cells``.

    Away from the poles and the antimeridian (:func:`_classify_by_centres`) most cells are classified
    from their centre alone; the rest, and geometries near a pole or ±180° (:func:`_classify_by_hexagons`),
    by testing each cell's hexagon.
    """
    parts = polygonal_parts(geom)
    if not parts:
        return frozenset(), frozenset()
    estimate = (geodesic_area_m2(geom) if area_m2 is None else area_m2) / hexagon_area_m2(res)
    if estimate > max_cells:
        raise ValueError(f"covering needs about {int(estimate)} cells at res {res} (max {max_cells})")
    min_lon, min_lat, max_lon, max_lat = geom.bounds
    edge_m = edge_length_m(res)
    worst_lat = min(max(abs(min_lat), abs(max_lat)), 89.0)
    eps_deg = MARGIN_FRACTION * edge_m / metres_per_degree(worst_lat)[0]
    # Reach of a hexagon from its centre, in degrees: the lon scale at the highest latitude a vertex can have.
    reach_lat = min(worst_lat + CENTRE_TO_VERTEX_FACTOR * edge_m / metres_per_degree(worst_lat)[1], 89.0)
    reach_deg = CENTRE_TO_VERTEX_FACTOR * edge_m / metres_per_degree(reach_lat)[0] + eps_deg
    seed_reach = reach_deg / _BUFFER_CHORD
    if reach_lat < FAST_MAX_LAT and min_lon - 2.0 * seed_reach > -180.0 and max_lon + 2.0 * seed_reach < 180.0:
        inner_deg = CENTRE_TO_EDGE_FACTOR * edge_m / metres_per_degree(reach_lat)[1]
        return _classify_by_centres(parts, res, eps_deg, reach_deg, inner_deg, max_cells)
    return _classify_by_hexagons(geom, parts, res, eps_deg, max_cells)


def _classify_by_centres(
    parts: list[Polygon], res: int, eps_deg: float, reach_deg: float, inner_deg: float, max_cells: int
) -> tuple[frozenset[int], frozenset[int]]:
    """Every hexagon lies within ``reach_deg - eps_deg`` of its centre (in planar lon/lat), so a cell
    whose centre is inside the polygon and farther than ``reach_deg`` from its boundary is interior, and
    one whose centre is outside and that far is not touched; every hexagon holds the disk of
    ``inner_deg`` around its centre, so a cell whose centre is closer than that to the boundary is a
    boundary cell. Only the cells in between are tested with their hexagons.

    Candidates: H3's centre polyfill of the polygon grown by ``reach_deg``. H3 tests centres in planar
    lon/lat like shapely, so every cell whose hexagon comes within ``eps_deg`` of the polygon is among
    them (tiny polygons included).
    """
    poly: BaseGeometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    edges = poly.boundary
    shapely.prepare(poly)
    shapely.prepare(edges)
    grown = _grown(poly, reach_deg)
    candidates = _seed_cells(polygonal_parts(grown), res, contain="center")
    if len(candidates) > 4 * max_cells:
        raise ValueError(f"covering needs more than {max_cells} cells at res {res}")
    cells = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
    centres = np.asarray([h3i.cell_to_latlng(c) for c in cells.tolist()], dtype=np.float64).reshape(-1, 2)
    inside = shapely.contains_xy(poly, centres[:, 1], centres[:, 0])
    near = shapely.dwithin(edges, shapely.points(centres[:, 1], centres[:, 0]), reach_deg)
    interior_mask = inside & ~near
    boundary_mask = near.copy()
    near_idx = np.flatnonzero(near)
    if near_idx.size:
        # a cell whose centre is closer to the boundary than its hexagon's inradius straddles it
        straddles = shapely.dwithin(edges, shapely.points(centres[near_idx, 1], centres[near_idx, 0]), inner_deg)
        test_idx = near_idx[~straddles]
        if test_idx.size:
            hexes, _polar = _hexagons(cells[test_idx].tolist())  # no pole, no antimeridian here (see caller)
            band_in = shapely.contains_properly(poly, hexes)
            band_in[band_in] = ~shapely.dwithin(edges, hexes[band_in], eps_deg)
            touches = band_in.copy()
            touches[~band_in] = shapely.dwithin(poly, hexes[~band_in], eps_deg)
            interior_mask[test_idx[band_in]] = True
            boundary_mask[test_idx] = touches & ~band_in
    interior = frozenset(cells[interior_mask].tolist())
    boundary = frozenset(cells[boundary_mask].tolist())
    if len(interior) + len(boundary) > max_cells:
        raise ValueError(f"covering needs more than {max_cells} cells at res {res}")
    return interior, boundary


def _classify_by_hexagons(
    geom: BaseGeometry, parts: list[Polygon], res: int, eps_deg: float, max_cells: int
) -> tuple[frozenset[int], frozenset[int]]:
    """Every candidate cell's hexagon tested: H3's overlap polyfill and the vertex cells, then the
    neighbours of the boundary cells found (H3 draws cells with great-circle arcs)."""
    inner = shapely.buffer(geom, -eps_deg, quad_segs=2)
    outer = shapely.buffer(geom, eps_deg, quad_segs=2)
    shapely.prepare(inner)
    shapely.prepare(outer)

    interior: set[int] = set()
    boundary: set[int] = set()
    seen: set[int] = set()
    todo = _seed_cells(parts, res)
    for part in parts:
        ext = np.asarray(part.exterior.coords)[:, :2]
        todo.update(cells_for(ext[:, 0], ext[:, 1], res).tolist())
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
        area_m2: float | None = None,
    ) -> None:
        """``area_m2``: the geometry's geodesic area when the caller already has it (validation does)."""
        if not polygonal_parts(geometry):
            raise ValueError("PolygonCover needs a non-empty Polygon or MultiPolygon")
        self.geometry: BaseGeometry = geometry
        shapely.prepare(self.geometry)
        if area_m2 is None:
            area_m2 = geodesic_area_m2(geometry)
        self.res: int = (
            res
            if res is not None
            else choose_res(geometry, target_cells=target_cells, min_res=min_res, max_res=max_res, area_m2=area_m2)
        )
        self.interior, self.boundary = classify_cells(geometry, self.res, max_cells=max_cells, area_m2=area_m2)
        self._interior_arr = np.fromiter(sorted(self.interior), dtype=np.int64, count=len(self.interior))
        self._boundary_arr = np.fromiter(sorted(self.boundary), dtype=np.int64, count=len(self.boundary))

    @classmethod
    def from_cells(cls, geometry: BaseGeometry, interior: Iterable[int], boundary: Iterable[int]) -> PolygonCover:
        """The cover of ``geometry`` from cells classified earlier for this same geometry (for example
        the stored ``hazard_cells``), without classifying again. ValueError when there are no cells or
        they are not all of one resolution."""
        self = cls.__new__(cls)
        inner = np.unique(np.asarray(list(interior), dtype=np.int64))
        edge = np.unique(np.asarray(list(boundary), dtype=np.int64))
        # an H3 index keeps its resolution in bits 52-55 (what h3's get_resolution reads), for every cell at once
        resolutions = np.unique(np.concatenate([inner, edge]) >> 52 & 0xF).tolist()
        if len(resolutions) != 1:
            raise ValueError(f"cells must share one resolution (got {resolutions})")
        self.res = int(resolutions[0])
        self.interior = frozenset(inner.tolist())
        self.boundary = frozenset(edge.tolist())
        self.geometry = geometry
        shapely.prepare(self.geometry)
        self._interior_arr = inner
        self._boundary_arr = edge
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
    """Many covers indexed by cell, for candidate (point, cover) pairs from sorted-array lookups.

    Keys are small ints chosen by the caller (e.g. fence slots). Each cover keeps its cells with
    packed ``key << 1 | interior`` entries as arrays; lookups use one sorted merge of all of them
    (cells, offsets, entries), rebuilt with numpy on the first lookup after a change, so a batch of
    points is matched with one ``searchsorted`` per resolution.
    """

    def __init__(self) -> None:
        self._covers: dict[int, PolygonCover] = {}
        self._cover_arrays: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        self._res_count: dict[int, int] = {}
        self._arrays: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None

    def __len__(self) -> int:
        return len(self._covers)

    @property
    def resolutions(self) -> list[int]:
        return sorted(r for r, n in self._res_count.items() if n > 0)

    def add(self, key: int, cover: PolygonCover) -> None:
        if key in self._covers:
            self.remove(key)
        self._arrays = None
        self._covers[key] = cover
        self._res_count[cover.res] = self._res_count.get(cover.res, 0) + 1
        n_in, n = len(cover.interior), len(cover)
        cells = np.fromiter(itertools.chain(cover.interior, cover.boundary), dtype=np.int64, count=n)
        packed = np.full(n, key << 1, dtype=np.int64)
        packed[:n_in] |= 1
        self._cover_arrays[key] = (cells, packed)

    def remove(self, key: int) -> None:
        cover = self._covers.pop(key, None)
        if cover is None:
            return
        self._arrays = None
        self._res_count[cover.res] -= 1
        del self._cover_arrays[key]

    def _sorted(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(distinct cells ascending, offsets (len + 1), entries)``: cell ``cells[i]`` holds
        ``entries[offsets[i]:offsets[i + 1]]``, covers in the order they were added."""
        if self._arrays is None:
            parts = list(self._cover_arrays.values())
            if parts:
                cells = np.concatenate([c for c, _ in parts])
                packed = np.concatenate([p for _, p in parts])
                order = np.argsort(cells, kind="stable")
                cells, packed = cells[order], packed[order]
                starts = np.flatnonzero(np.diff(cells, prepend=cells[0] - 1))  # sorted: first of each run
                uniq = cells[starts]
                offsets = np.append(starts, cells.size).astype(np.int64)
            else:
                uniq, offsets, packed = (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64),
                                         np.zeros(0, dtype=np.int64))  # fmt: skip
            self._arrays = (uniq.astype(np.int64, copy=False), offsets, packed)
        return self._arrays

    def candidates(
        self, lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Candidate pairs ``(point_index, key, interior)`` for points against every indexed cover,
        resolution by resolution (ascending), points in order, a cell's entries in insertion order.

        Every resolution gets its own ``latlng_to_cell``: a point's cell at a coarser resolution is
        *not* always the parent of its finer cell (H3 children do not tile their parent exactly; for
        ~6% of points they differ), so parents would miss or invent candidates."""
        cells_sorted, offsets, entries = self._sorted()
        pts_parts: list[npt.NDArray[np.int64]] = []
        packed_parts: list[npt.NDArray[np.int64]] = []
        if cells_sorted.size:
            for res in self.resolutions:
                cells = cells_for(lons, lats, res)
                at = np.searchsorted(cells_sorted, cells)
                at[at == cells_sorted.size] = 0
                hit = np.flatnonzero(cells_sorted[at] == cells)
                if not hit.size:
                    continue
                first = offsets[at[hit]]
                counts = offsets[at[hit] + 1] - first
                total = int(counts.sum())
                # entries of every hit cell, one after another (a CSR gather)
                starts = np.cumsum(counts) - counts
                gather = np.repeat(first - starts, counts) + np.arange(total, dtype=np.int64)
                pts_parts.append(np.repeat(hit, counts))
                packed_parts.append(entries[gather])
        if not pts_parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        pts = np.concatenate(pts_parts).astype(np.int64, copy=False)
        packed = np.concatenate(packed_parts)
        return pts, packed >> 1, (packed & 1).astype(bool)

    def cover(self, key: int) -> PolygonCover:
        return self._covers[key]
