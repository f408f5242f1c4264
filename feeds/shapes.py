"""Geometry helpers the parsers need: geodesic circles, bbox polygons, antimeridian splitting.

Everything here is lon, lat (GeoJSON order). Circles come from
:mod:`geo.geodesy`; the rest is small shapely glue specific to feed payloads.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from geo.geodesy import point_buffer

_GEOD = Geod(ellps="WGS84")
_WORLD = box(-180.0, -90.0, 180.0, 90.0)
MIN_RADIUS_M = 100.0
"""Smallest circle radius used for a hazard (a zero-radius CAP ``<circle>`` gets this)."""


def valid_lon_lat(lon: Any, lat: Any) -> bool:
    """True for finite numbers in range (lon −180…180, lat −90…90)."""
    try:
        lo, la = float(lon), float(lat)
    except (TypeError, ValueError):
        return False
    return math.isfinite(lo) and math.isfinite(la) and -180.0 <= lo <= 180.0 and -90.0 <= la <= 90.0


def fold_antimeridian(geom: BaseGeometry) -> BaseGeometry:
    """Cut a shape drawn in unwrapped longitudes (may pass ±180) into pieces inside −180…180."""
    minx, _, maxx, _ = geom.bounds
    if minx >= -180.0 and maxx <= 180.0:
        return geom
    from shapely.affinity import translate

    parts = []
    for shift in (-360.0, 0.0, 360.0):
        piece = translate(geom, xoff=shift).intersection(_WORLD)
        if not piece.is_empty:
            parts.append(piece)
    return unary_union(parts)


def to_geojson(geom: BaseGeometry) -> dict[str, Any] | None:
    """Polygon/MultiPolygon → GeoJSON dict (lists, not tuples); other or empty → None."""
    if geom.is_empty:
        return None
    polys: list[Polygon] = []
    if isinstance(geom, Polygon):
        polys = [geom]
    elif isinstance(geom, MultiPolygon):
        polys = list(geom.geoms)
    elif hasattr(geom, "geoms"):
        polys = [g for g in geom.geoms if isinstance(g, Polygon) and not g.is_empty]
    if not polys:
        return None
    if len(polys) == 1:
        return {"type": "Polygon", "coordinates": _rings(polys[0])}
    return {"type": "MultiPolygon", "coordinates": [_rings(p) for p in polys]}


def _rings(poly: Polygon) -> list[Any]:
    """A polygon's GeoJSON rings as lists, each ring's coordinates in one array conversion (what
    ``mapping`` gives, with lists for tuples, without a Python call per position)."""
    if poly.is_empty:
        return []
    return [np.asarray(poly.exterior.coords).tolist(), *(np.asarray(r.coords).tolist() for r in poly.interiors)]


def geodesic_circle(lon: float, lat: float, radius_m: float, segments: int = 64) -> dict[str, Any]:
    """A geodesic circle (WGS84) as GeoJSON; a MultiPolygon split at ±180° when it crosses it.

    Uses :func:`geo.geodesy.point_buffer`. The radius is raised to at least :data:`MIN_RADIUS_M`.
    A circle that would contain a pole (which ``point_buffer`` refuses) is drawn in unwrapped
    longitudes and cut at the antimeridian instead — an approximation for that rare case.
    """
    radius = max(float(radius_m), MIN_RADIUS_M)
    try:
        geom: BaseGeometry = point_buffer(lon, lat, radius, segments)
    except ValueError:
        azimuths = [i * 360.0 / segments for i in range(segments)]
        lons, lats, _ = _GEOD.fwd([lon] * segments, [lat] * segments, azimuths, [radius] * segments)
        ring = [(lon + (x - lon + 540.0) % 360.0 - 180.0, y) for x, y in zip(lons, lats, strict=True)]
        geom = fold_antimeridian(Polygon([*ring, ring[0]]).buffer(0))
    out = to_geojson(geom)
    assert out is not None
    return out


def bbox_polygon(lon_min: float, lon_max: float, lat_min: float, lat_max: float) -> dict[str, Any] | None:
    """A lon/lat box as GeoJSON; ``lon_min > lon_max`` means it crosses ±180 (split in two)."""
    if lat_min > lat_max:
        lat_min, lat_max = lat_max, lat_min
    lat_min, lat_max = max(lat_min, -90.0), min(lat_max, 90.0)
    if lon_min > lon_max:
        lon_max += 360.0
    geom = fold_antimeridian(box(lon_min, lat_min, lon_max, lat_max))
    return to_geojson(geom)


def polygon_from_ring(ring: list[tuple[float, float]]) -> dict[str, Any] | None:
    """A closed lon/lat ring → valid GeoJSON polygon (repaired with ``make_valid``), or None.

    A ring whose consecutive points jump by more than 180° of longitude is unwrapped and
    split at the antimeridian.
    """
    if len(ring) < 3:
        return None
    pts = [ring[0]]
    for x, y in ring[1:]:
        px = pts[-1][0]
        dx = (x - px + 540.0) % 360.0 - 180.0
        pts.append((px + dx, y))
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    if len(pts) < 4:
        return None
    geom: BaseGeometry = Polygon(pts)
    if not geom.is_valid:
        from shapely.validation import make_valid

        geom = make_valid(geom)
    return to_geojson(fold_antimeridian(geom))


def union_geojson(geoms: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Union of GeoJSON polygons (invalid parts repaired); None when nothing is left."""
    shapes = []
    for g in geoms:
        s = shape(g)
        if not s.is_valid:
            s = s.buffer(0)
        if not s.is_empty:
            shapes.append(s)
    if not shapes:
        return None
    return to_geojson(unary_union(shapes))


def representative_point(geom: dict[str, Any]) -> tuple[float, float] | None:
    """A point inside the geometry (lon, lat)."""
    try:  # GEOS reads the JSON in one call; shape() builds every position in Python
        s = shapely.from_geojson(msgspec.json.encode(geom))
    except Exception:  # whatever GEOS refuses, shape() reads or rejects as it always did
        s = shape(geom)
    if s.is_empty:
        return None
    p = s.representative_point()
    return (round(p.x, 6), round(p.y, 6))
