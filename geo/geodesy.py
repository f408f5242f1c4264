"""Geodesy on the WGS84 ellipsoid (pyproj ``Geod``) and metric buffers.

All functions take ``lon, lat`` in degrees and return metres / square metres.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS, Geod, Transformer
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.antimeridian import (
    PoleEncirclingRing,
    crosses_antimeridian_split,
    has_jump,
    polygonal_parts,
    split_unwrapped,
    unwrap_geometry,
    unwrap_lons,
)

GEOD = Geod(ellps="WGS84")
EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance between two points, metres."""
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return float(dist)


def distances_m(lon: float, lat: float, lons: npt.ArrayLike, lats: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Geodesic distances from one point to many (vectorised), metres."""
    lon_arr = np.asarray(lons, dtype=np.float64).ravel()
    lat_arr = np.asarray(lats, dtype=np.float64).ravel()
    if lon_arr.size == 0:
        return np.zeros(0, dtype=np.float64)
    _, _, dist = GEOD.inv(np.full_like(lon_arr, lon), np.full_like(lat_arr, lat), lon_arr, lat_arr)
    return np.asarray(dist, dtype=np.float64)


def point_buffer(lon: float, lat: float, radius_m: float, segments: int = 64) -> Polygon | MultiPolygon:
    """Geodesic circle of ``radius_m`` around a point, as a polygon in lon/lat (CCW).

    Vertices lie exactly ``radius_m`` from the centre on the ellipsoid. A circle crossing the
    antimeridian is returned as a MultiPolygon split at ±180. Raises ValueError for non-positive
    radii and for circles that contain a pole.
    """
    if not (radius_m > 0 and math.isfinite(radius_m)):
        raise ValueError("radius_m must be a positive finite number")
    if segments < 8:
        raise ValueError("segments must be >= 8")
    # azimuths decrease so that the ring runs counter-clockwise
    az = np.linspace(360.0, 0.0, segments, endpoint=False)
    lons, lats, _ = GEOD.fwd(np.full(segments, lon), np.full(segments, lat), az, np.full(segments, radius_m))
    lons_arr = np.asarray(lons, dtype=np.float64)
    lats_arr = np.asarray(lats, dtype=np.float64)
    closed_lons = np.append(lons_arr, lons_arr[0])
    if has_jump(closed_lons):
        unwrapped = unwrap_lons(closed_lons, reference=lon)
        if abs(unwrapped[-1] - unwrapped[0]) > 1e-6:
            raise ValueError("circle contains a pole")
        ring = Polygon(zip(unwrapped[:-1].tolist(), lats_arr.tolist(), strict=True))
        return split_unwrapped(ring)
    return Polygon(zip(lons_arr.tolist(), lats_arr.tolist(), strict=True))


def _local_aeqd(lon: float, lat: float) -> tuple[Transformer, Transformer]:
    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat:.10f} +lon_0={lon:.10f} +datum=WGS84 +units=m +no_defs")
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return fwd, inv


def to_local_metres(geom: BaseGeometry) -> tuple[BaseGeometry, Transformer]:
    """Project ``geom`` into an azimuthal equidistant CRS centred on it; returns it and the inverse.

    Antimeridian-split geometries are joined first, so the projection sees one continuous shape.
    """
    joined = unwrap_geometry(geom)
    centre = joined.centroid if not joined.is_empty else joined
    lon0, lat0 = float(centre.x), float(centre.y)
    fwd, inv = _local_aeqd(((lon0 + 180.0) % 360.0) - 180.0, lat0)

    def project(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = fwd.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(joined, project), inv


def from_local_metres(geom: BaseGeometry, inv: Transformer) -> BaseGeometry:
    """Inverse of :func:`to_local_metres`; splits at the antimeridian again when needed."""

    def project(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        lon, lat = inv.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    out = shapely.transform(geom, project)
    if out.is_empty or isinstance(out, (LineString, MultiLineString)):
        return out
    parts = polygonal_parts(out)
    rebuilt: list[Polygon] = []
    wrapped = False
    for part in parts:
        ext = np.asarray(part.exterior.coords)
        if has_jump(ext[:, 0]):
            wrapped = True
            try:
                ext_lons = unwrap_lons(ext[:, 0])
            except PoleEncirclingRing as exc:  # pragma: no cover - polar buffers are rejected upstream
                raise ValueError(str(exc)) from exc
            holes = []
            for hole in part.interiors:
                h = np.asarray(hole.coords)
                holes.append(list(zip(unwrap_lons(h[:, 0], reference=float(ext_lons[0])), h[:, 1], strict=True)))
            rebuilt.append(Polygon(list(zip(ext_lons, ext[:, 1], strict=True)), holes))
        else:
            rebuilt.append(part)
    if not wrapped:
        return out
    return split_unwrapped(shapely.union_all(rebuilt))


def buffer_geometry_m(geom: BaseGeometry, distance_m: float, *, quad_segs: int = 8) -> BaseGeometry:
    """Metric buffer (positive grows, negative shrinks) through a local azimuthal equidistant projection.

    Accurate for shapes up to a few hundred kilometres across; may return an empty geometry for a
    negative buffer larger than the shape.
    """
    if distance_m == 0 or geom.is_empty:
        return geom
    local, inv = to_local_metres(geom)
    buffered = shapely.buffer(local, distance_m, quad_segs=quad_segs)
    if buffered.is_empty:
        return buffered
    return from_local_metres(buffered, inv)


def geodesic_area_m2(geom: BaseGeometry) -> float:
    """Area on the ellipsoid in m² (holes subtracted, orientation ignored)."""
    total = 0.0
    for poly in polygonal_parts(geom):
        ext_area, _ = GEOD.polygon_area_perimeter(*np.asarray(poly.exterior.coords)[:, :2].T)
        area = abs(float(ext_area))
        for ring in poly.interiors:
            hole_area, _ = GEOD.polygon_area_perimeter(*np.asarray(ring.coords)[:, :2].T)
            area -= abs(float(hole_area))
        total += area
    return total


def geodesic_perimeter_m(geom: BaseGeometry) -> float:
    """Length of all polygon rings on the ellipsoid, metres."""
    total = 0.0
    for poly in polygonal_parts(geom):
        for ring in (poly.exterior, *poly.interiors):
            lons, lats = np.asarray(ring.coords)[:, :2].T
            total += float(GEOD.line_length(lons, lats))
    return total


def route_line(lon1: float, lat1: float, lon2: float, lat2: float, *, step_m: float = 10_000.0) -> BaseGeometry:
    """The geodesic between two points as a (densified) line in lon/lat, split at the antimeridian."""
    dist = distance_m(lon1, lat1, lon2, lat2)
    n_between = min(int(dist // step_m), 200)
    pts: list[tuple[float, float]] = [(lon1, lat1)]
    if n_between > 0:
        pts.extend((float(x), float(y)) for x, y in GEOD.npts(lon1, lat1, lon2, lat2, n_between))
    pts.append((lon2, lat2))
    lons = np.array([p[0] for p in pts])
    lats = np.array([p[1] for p in pts])
    if not has_jump(lons):
        return LineString(list(zip(lons, lats, strict=True)))
    unwrapped = unwrap_lons(lons)
    line = LineString(list(zip(unwrapped, lats, strict=True)))
    pieces = []
    for lo, hi, shift in ((-540.0, -180.0, 360.0), (-180.0, 180.0, 0.0), (180.0, 540.0, -360.0)):
        piece = shapely.clip_by_rect(line, lo, -90.0, hi, 90.0)
        if not piece.is_empty:
            pieces.append(shapely.transform(piece, lambda xy, s=shift: xy + np.array([s, 0.0])))
    return shapely.union_all(pieces)


def route_lines(
    lons: npt.ArrayLike, lats: npt.ArrayLike, lon2: float, lat2: float, *, step_m: float = 10_000.0
) -> npt.NDArray[np.object_]:
    """``route_line`` from every ``(lons[i], lats[i])`` to one point, as an array of lines.

    Routes shorter than ``step_m`` that do not cross the antimeridian (nearly all of a dispatch) are
    plain two-point lines built in one vectorised call; the others go through :func:`route_line`.
    """
    x = np.asarray(lons, dtype=np.float64)
    y = np.asarray(lats, dtype=np.float64)
    out = np.empty(x.size, dtype=object)
    if x.size == 0:
        return out
    dist = distances_m(lon2, lat2, x, y)
    simple = (dist < step_m) & (np.abs(x - lon2) <= 180.0)
    idx = np.flatnonzero(simple)
    if idx.size:
        coords = np.empty((2 * idx.size, 2))
        coords[0::2, 0], coords[0::2, 1] = x[idx], y[idx]
        coords[1::2, 0], coords[1::2, 1] = lon2, lat2
        out[idx] = shapely.linestrings(coords, indices=np.repeat(np.arange(idx.size), 2))
    for i in np.flatnonzero(~simple).tolist():
        out[i] = route_line(float(x[i]), float(y[i]), lon2, lat2, step_m=step_m)
    return out


def line_crosses(geom: BaseGeometry, lon1: float, lat1: float, lon2: float, lat2: float) -> bool:
    """True when the straight (geodesic) route between two points touches the polygon's interior."""
    line = route_line(lon1, lat1, lon2, lat2)
    return bool(shapely.intersects(geom, line))


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and latitude at ``lat`` (WGS84 series, error < 1 m/degree)."""
    phi = math.radians(lat)
    m_lat = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    m_lon = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
    return max(m_lon, 1e-3), m_lat


def distance_to_boundary_m(geom: BaseGeometry, lon: float, lat: float, limit_m: float) -> float:
    """Distance from a point to the polygon's boundary in metres, or ``math.inf`` if beyond ``limit_m``.

    Uses a local equirectangular approximation around the point (error well under 1% for distances of
    a few kilometres), and only looks at the boundary near the point, so it is cheap for large fences.
    Edges lying exactly on the antimeridian (artefacts of a split) are ignored.
    """
    m_lon, m_lat = metres_per_degree(lat)
    pad_lon = limit_m / m_lon
    pad_lat = limit_m / m_lat
    boundary = geom.boundary
    near = shapely.clip_by_rect(boundary, lon - pad_lon, lat - pad_lat, lon + pad_lon, lat + pad_lat)
    if near.is_empty:
        return math.inf
    scale = np.array([m_lon, m_lat])
    origin = np.array([lon, lat])
    local = shapely.transform(near, lambda xy: (xy - origin) * scale)
    if crosses_antimeridian_split(geom):
        local = _drop_antimeridian_edges(local, lon, m_lon)
        if local.is_empty:
            return math.inf
    dist = float(shapely.distance(local, shapely.Point(0.0, 0.0)))
    return dist if dist < limit_m else math.inf


def _drop_antimeridian_edges(local: BaseGeometry, lon: float, m_lon: float) -> BaseGeometry:
    """Remove segments lying on lon = ±180 (expressed in the local frame) from a linework geometry."""
    xs_am = [(-180.0 - lon) * m_lon, (180.0 - lon) * m_lon]
    segs = []
    for line in shapely.get_parts(local):
        c = np.asarray(line.coords) if hasattr(line, "coords") else np.zeros((0, 2))
        for a, b in itertools.pairwise(c):
            on_am = any(abs(a[0] - x) < 1e-3 and abs(b[0] - x) < 1e-3 for x in xs_am)
            if not on_am:
                segs.append(LineString([a, b]))
    return MultiLineString(segs) if segs else MultiLineString()
