"""H3 indexing helpers: cells as 64-bit ints (they fit PostgreSQL ``bigint``).

H3 indexes are always below 2**63 (the high bit is reserved), so the int form is
stored as a signed ``bigint`` without conversion. Coordinates are ``lon, lat``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import h3
import h3.api.basic_int as h3i
import numpy as np
import numpy.typing as npt

try:  # the compiled function behind h3.api.basic_int.latlng_to_cell (which only adds a Python call)
    from h3._cy import latlng_to_cell as _latlng_to_cell
except ImportError:  # pragma: no cover - another h3 build
    _latlng_to_cell = h3i.latlng_to_cell

RES_POSITION = 9
"""Resolution stored with every position row (~0.1 km² cells, edge ~200 m)."""

MAX_BBOX_CELLS = 200_000
"""Upper bound for :func:`cells_in_bbox`; past it a ValueError asks for a coarser resolution."""


def cell_for(lon: float, lat: float, res: int = RES_POSITION) -> int:
    """The H3 cell (as int) containing ``lon, lat`` at ``res``."""
    return int(h3i.latlng_to_cell(lat, lon, res))


def cells_for(lons: npt.ArrayLike, lats: npt.ArrayLike, res: int = RES_POSITION) -> npt.NDArray[np.int64]:
    """Vectorised-by-call :func:`cell_for`; returns an int64 array of the same length."""
    lon_arr = np.asarray(lons, dtype=np.float64).ravel()
    lat_arr = np.asarray(lats, dtype=np.float64).ravel()
    if lon_arr.shape != lat_arr.shape:
        raise ValueError("lons and lats must have the same length")
    if not lon_arr.size:
        return np.zeros(0, dtype=np.int64)
    cells = map(_latlng_to_cell, lat_arr.tolist(), lon_arr.tolist(), itertools.repeat(res, lon_arr.size))
    return np.fromiter(cells, dtype=np.int64, count=lon_arr.size)


def cell_to_str(cell: int) -> str:
    """Hex string form (``'891ea13200fffff'``)."""
    return str(h3.int_to_str(int(cell)))


def str_to_cell(text: str) -> int:
    """Parse the hex string form; raises ValueError when it is not a valid cell."""
    try:
        cell = int(h3.str_to_int(text))
    except (ValueError, TypeError, h3.H3BaseException) as exc:
        raise ValueError(f"not an H3 cell: {text!r}") from exc
    if not h3.is_valid_cell(h3.int_to_str(cell)):
        raise ValueError(f"not an H3 cell: {text!r}")
    return cell


def resolution(cell: int) -> int:
    return int(h3.get_resolution(h3.int_to_str(int(cell))))


def cells_in_bbox(
    min_lon: float,
    min_lat: float,
    max_lon: float,
    max_lat: float,
    res: int,
    *,
    max_cells: int = MAX_BBOX_CELLS,
) -> set[int]:
    """Cells whose centre lies in the bbox, plus one ring so edges are covered.

    Raises ValueError when the box is inverted or would produce more than ``max_cells`` cells
    (the estimate is checked before polyfilling, so a huge request stays cheap).
    """
    if not (-180.0 <= min_lon <= 180.0 and -180.0 <= max_lon <= 180.0):
        raise ValueError("longitude out of range")
    if not (-90.0 <= min_lat <= max_lat <= 90.0):
        raise ValueError("latitude out of range or inverted")
    if min_lon > max_lon:
        # crosses the antimeridian: split in two boxes
        west = cells_in_bbox(min_lon, min_lat, 180.0, max_lat, res, max_cells=max_cells)
        east = cells_in_bbox(-180.0, min_lat, max_lon, max_lat, res, max_cells=max_cells)
        out = west | east
        if len(out) > max_cells:
            raise ValueError(f"bbox covers more than {max_cells} cells at res {res}")
        return out
    from shapely.geometry import box

    from geo.geodesy import geodesic_area_m2

    area_m2 = geodesic_area_m2(box(min_lon, min_lat, max_lon, max_lat))
    estimate = area_m2 / (h3.average_hexagon_area(res, unit="m^2"))
    if estimate > max_cells:
        raise ValueError(f"bbox covers about {int(estimate)} cells at res {res} (max {max_cells})")
    shape = h3.LatLngPoly([(min_lat, min_lon), (min_lat, max_lon), (max_lat, max_lon), (max_lat, min_lon)])
    inner = h3.h3shape_to_cells_experimental(shape, res, contain="overlap")
    out = {int(h3.str_to_int(c)) for c in inner}
    if not out:
        out.add(cell_for((min_lon + max_lon) / 2, (min_lat + max_lat) / 2, res))
    if len(out) > max_cells:
        raise ValueError(f"bbox covers more than {max_cells} cells at res {res}")
    return out


def grid_disk(cell: int, k: int) -> set[int]:
    """All cells within ``k`` grid steps of ``cell`` (including it)."""
    if k < 0:
        raise ValueError("k must be >= 0")
    return {int(h3.str_to_int(c)) for c in h3.grid_disk(h3.int_to_str(int(cell)), k)}


def grid_ring(cell: int, k: int) -> set[int]:
    """Cells exactly ``k`` steps away (hollow ring)."""
    return {int(h3.str_to_int(c)) for c in h3.grid_ring(h3.int_to_str(int(cell)), k)}


def parent(cell: int, res: int) -> int:
    return int(h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(cell)), res)))


def children(cell: int, res: int) -> set[int]:
    return {int(h3.str_to_int(c)) for c in h3.cell_to_children(h3.int_to_str(int(cell)), res)}


def cell_center(cell: int) -> tuple[float, float]:
    """Centre as ``(lon, lat)``."""
    lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cell)))
    return float(lon), float(lat)


def cell_boundary_lonlat(cell: int) -> list[tuple[float, float]]:
    """Boundary vertices as ``(lon, lat)``, open ring (as h3 returns it)."""
    return [(float(lon), float(lat)) for lat, lon in h3.cell_to_boundary(h3.int_to_str(int(cell)))]


def cell_boundary_geojson(cell: int) -> dict[str, Any]:
    """GeoJSON Polygon of the cell (closed ring, lon/lat, CCW as h3 returns it)."""
    ring: list[list[float]] = [[lon, lat] for lon, lat in cell_boundary_lonlat(cell)]
    ring.append(list(ring[0]))
    return {"type": "Polygon", "coordinates": [ring]}


def edge_length_m(res: int) -> float:
    """Average hexagon edge length at ``res``, metres."""
    return float(h3.average_hexagon_edge_length(res, unit="m"))


def hexagon_area_m2(res: int) -> float:
    return float(h3.average_hexagon_area(res, unit="m^2"))


def cells_to_ints(cells: Iterable[str]) -> set[int]:
    return {int(h3.str_to_int(c)) for c in cells}
