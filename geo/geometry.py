"""GeoJSON geometry validation and repair for hazards, geofences and alert areas.

``validate_geojson`` checks a GeoJSON Polygon/MultiPolygon object and returns the repaired shapely
geometry with a list of the repairs made; every rejection is a :class:`GeometryError` carrying
``(field, message)`` reasons suited to a 422 problem detail's ``errors`` member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import msgspec
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from geo.antimeridian import PoleEncirclingRing, has_jump, polygonal_parts, split_unwrapped, unwrap_ring
from geo.geodesy import buffer_geometry_m, from_local_metres, geodesic_area_m2, point_buffer, to_local_metres

MAX_VERTICES = 10_000
MAX_AREA_KM2 = 2_000_000.0
"""Default area limit: larger than any US state or a tropical-cyclone warning area."""
MAX_RADIUS_M = 2_000_000.0

Polygonal: TypeAlias = Polygon | MultiPolygon


class GeometryError(ValueError):
    """Invalid geometry; ``errors`` lists ``(field, message)`` pairs (field is a JSON-pointer-like path)."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors: list[tuple[str, str]] = list(errors)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.errors) or "invalid geometry")


class ParsedGeometry(msgspec.Struct, frozen=True):
    """Result of validation: the geometry, whether it was changed, and the repairs made."""

    geometry: Any  # Polygon | MultiPolygon (shapely objects are not msgspec-serialisable)
    repaired: bool
    repairs: list[str]
    area_m2: float
    n_vertices: int


def count_vertices(geom: BaseGeometry) -> int:
    """Stored coordinates of all rings (closing positions included)."""
    return int(shapely.get_num_coordinates(geom))


def _check_position(pos: Any, field: str, errors: list[tuple[str, str]]) -> tuple[float, float] | None:
    if not isinstance(pos, (list, tuple)) or len(pos) < 2:
        errors.append((field, "position must be an array [lon, lat]"))
        return None
    lon, lat = pos[0], pos[1]
    if (
        isinstance(lon, bool)
        or isinstance(lat, bool)
        or not isinstance(lon, (int, float))
        or not isinstance(lat, (int, float))
    ):
        errors.append((field, "coordinates must be numbers"))
        return None
    lon_f, lat_f = float(lon), float(lat)
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)):
        errors.append((field, "coordinates must be finite (no NaN or Infinity)"))
        return None
    if not -180.0 <= lon_f <= 180.0:
        errors.append((field, f"longitude {lon_f} outside [-180, 180]"))
        return None
    if not -90.0 <= lat_f <= 90.0:
        errors.append((field, f"latitude {lat_f} outside [-90, 90]"))
        return None
    return lon_f, lat_f


def _check_ring(ring: Any, field: str, errors: list[tuple[str, str]]) -> list[tuple[float, float]] | None:
    if not isinstance(ring, (list, tuple)):
        errors.append((field, "ring must be an array of positions"))
        return None
    n_before = len(errors)
    pts: list[tuple[float, float]] = []
    for i, pos in enumerate(ring):
        p = _check_position(pos, f"{field}[{i}]", errors)
        if p is not None:
            pts.append(p)
        if len(errors) - n_before >= 5:  # enough reasons for one ring
            break
    if len(errors) > n_before:
        return None
    if len(pts) < 4:
        errors.append((field, f"ring needs at least 4 positions, got {len(pts)}"))
        return None
    if pts[0] != pts[-1]:
        errors.append((field, "ring is not closed (first position must equal the last)"))
        return None
    return pts


def _rings_of(obj: Any, errors: list[tuple[str, str]]) -> list[list[list[tuple[float, float]]]]:
    """Parsed polygons (each a list of rings) from a GeoJSON Polygon or MultiPolygon mapping."""
    if not isinstance(obj, dict):
        errors.append(("geometry", "must be a GeoJSON object"))
        return []
    gtype = obj.get("type")
    if gtype == "Feature":
        return _rings_of(obj.get("geometry"), errors)
    coords = obj.get("coordinates")
    if gtype == "Polygon":
        polys_raw: Any = [coords]
        base = "geometry.coordinates"
    elif gtype == "MultiPolygon":
        polys_raw = coords
        base = "geometry.coordinates"
    elif gtype == "Point":
        errors.append(("geometry.type", "a Point needs radius_m; use a point with a radius"))
        return []
    else:
        errors.append(("geometry.type", f"unsupported type {gtype!r} (Polygon or MultiPolygon expected)"))
        return []
    if not isinstance(polys_raw, (list, tuple)) or not polys_raw or polys_raw == [None]:
        errors.append((base, "coordinates are missing or empty"))
        return []
    out: list[list[list[tuple[float, float]]]] = []
    for pi, poly in enumerate(polys_raw):
        pfield = f"{base}[{pi}]" if gtype == "MultiPolygon" else base
        if not isinstance(poly, (list, tuple)) or not poly:
            errors.append((pfield, "polygon has no rings (empty)"))
            continue
        rings: list[list[tuple[float, float]]] = []
        for ri, ring in enumerate(poly):
            r = _check_ring(ring, f"{pfield}[{ri}]", errors)
            if r is not None:
                rings.append(r)
        if len(rings) == len(poly):
            out.append(rings)
    return out


def _build(polys: list[list[list[tuple[float, float]]]], repairs: list[str]) -> BaseGeometry:
    """Shapely geometry from rings, unwrapping and splitting rings that cross the antimeridian."""
    pieces: list[BaseGeometry] = []
    if any(
        not shapely.LinearRing(rings[0]).is_ccw or any(shapely.LinearRing(h).is_ccw for h in rings[1:])
        for rings in polys
    ):
        repairs.append("ring orientation fixed (exterior counter-clockwise, holes clockwise)")
    for rings in polys:
        ext = rings[0]
        if has_jump([p[0] for p in ext]):
            ext_u = unwrap_ring(ext)
            holes_u = [unwrap_ring(h, reference=ext_u[0][0]) for h in rings[1:]]
            poly = Polygon(ext_u, holes_u)
            if not poly.is_valid:
                poly = _polygonal(shapely.make_valid(poly))
                repairs.append("made valid")
            pieces.append(split_unwrapped(poly))
            repairs.append("split at the antimeridian")
        else:
            pieces.append(Polygon(ext, rings[1:]))
    parts: list[Polygon] = []
    for p in pieces:
        parts.extend(polygonal_parts(p))
    if len(parts) == 1:
        return parts[0]
    return MultiPolygon(parts)


def _polygonal(geom: BaseGeometry) -> Polygonal:
    parts = polygonal_parts(geom)
    if not parts:
        return Polygon()
    if len(parts) == 1:
        return parts[0]
    return MultiPolygon(parts)


def orient_ccw(geom: BaseGeometry) -> Polygonal:
    """Exterior rings counter-clockwise, holes clockwise (RFC 7946)."""
    parts = [orient(p, sign=1.0) for p in polygonal_parts(geom)]
    if len(parts) == 1:
        return parts[0]
    return MultiPolygon(parts)


def _finish(
    geom: BaseGeometry,
    repairs: list[str],
    *,
    repair: bool,
    max_vertices: int,
    max_area_km2: float,
) -> ParsedGeometry:
    if geom.is_empty:
        raise GeometryError([("geometry", "geometry is empty")])
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        if not repair:
            raise GeometryError([("geometry", f"invalid geometry: {reason}")])
        fixed = _polygonal(shapely.make_valid(geom))
        repairs.append(f"made valid ({reason})")
        geom = fixed
        if geom.is_empty:
            raise GeometryError([("geometry", f"degenerate geometry (zero area): {reason}")])
    geom = orient_ccw(geom)
    if geom.area == 0.0:
        raise GeometryError([("geometry", "degenerate geometry (zero area)")])
    n_vertices = count_vertices(geom)
    if n_vertices > max_vertices:
        raise GeometryError([("geometry", f"too many vertices: {n_vertices} > {max_vertices}")])
    area_m2 = geodesic_area_m2(geom)
    if area_m2 <= 0.0:
        raise GeometryError([("geometry", "degenerate geometry (zero area)")])
    if area_m2 > max_area_km2 * 1e6:
        raise GeometryError([("geometry", f"area {area_m2 / 1e6:.0f} km² exceeds the limit of {max_area_km2:.0f} km²")])
    return ParsedGeometry(
        geometry=geom, repaired=bool(repairs), repairs=repairs, area_m2=area_m2, n_vertices=n_vertices
    )


def validate_geojson(
    obj: Any,
    *,
    max_vertices: int = MAX_VERTICES,
    max_area_km2: float = MAX_AREA_KM2,
    repair: bool = True,
) -> ParsedGeometry:
    """Validate (and by default repair) a GeoJSON Polygon/MultiPolygon (or a Feature holding one).

    Checks: known type, numeric finite coordinates, lon in [-180, 180], lat in [-90, 90], closed rings
    of >= 4 positions, not empty, not degenerate, at most ``max_vertices``, at most ``max_area_km2``.
    Repairs: rings crossing the antimeridian (consecutive longitudes > 180° apart) are split into a
    MultiPolygon within [-180, 180]; invalid geometry goes through ``shapely.make_valid`` keeping only
    polygonal parts (``repair=False`` rejects it instead); rings are oriented exterior-CCW.
    """
    errors: list[tuple[str, str]] = []
    polys = _rings_of(obj, errors)
    if errors:
        raise GeometryError(errors)
    if not polys:
        raise GeometryError([("geometry", "geometry is empty")])
    total = sum(len(r) for rings in polys for r in rings)
    if total > max_vertices:
        raise GeometryError([("geometry", f"too many vertices: {total} > {max_vertices}")])
    repairs: list[str] = []
    try:
        geom = _build(polys, repairs)
    except PoleEncirclingRing:
        raise GeometryError([("geometry", "a ring encircles a pole (not supported)")]) from None
    return _finish(geom, repairs, repair=repair, max_vertices=max_vertices, max_area_km2=max_area_km2)


def parse_geojson(
    obj: Any,
    *,
    max_vertices: int = MAX_VERTICES,
    max_area_km2: float = MAX_AREA_KM2,
    repair: bool = True,
) -> Polygonal:
    """Like :func:`validate_geojson` but returns just the geometry."""
    geom: Polygonal = validate_geojson(
        obj, max_vertices=max_vertices, max_area_km2=max_area_km2, repair=repair
    ).geometry
    return geom


def parse_point_radius(
    obj: Any,
    radius_m: float,
    *,
    segments: int = 64,
    max_radius_m: float = MAX_RADIUS_M,
    max_area_km2: float = MAX_AREA_KM2,
) -> ParsedGeometry:
    """A GeoJSON Point (or ``[lon, lat]``) with a radius, as a geodesic circle polygon."""
    errors: list[tuple[str, str]] = []
    coords = obj.get("coordinates") if isinstance(obj, dict) else obj
    if isinstance(obj, dict) and obj.get("type") != "Point":
        errors.append(("geometry.type", f"expected Point, got {obj.get('type')!r}"))
        raise GeometryError(errors)
    pos = _check_position(coords, "geometry.coordinates", errors)
    if isinstance(radius_m, bool) or not isinstance(radius_m, (int, float)) or not math.isfinite(radius_m):
        errors.append(("radius_m", "must be a finite number"))
    elif radius_m <= 0:
        errors.append(("radius_m", "must be positive"))
    elif radius_m > max_radius_m:
        errors.append(("radius_m", f"must be at most {max_radius_m:.0f} m"))
    if errors or pos is None:
        raise GeometryError(errors)
    try:
        circle = point_buffer(pos[0], pos[1], float(radius_m), segments=segments)
    except ValueError as exc:
        raise GeometryError([("radius_m", str(exc))]) from None
    area_m2 = geodesic_area_m2(circle)
    if area_m2 > max_area_km2 * 1e6:
        raise GeometryError([("radius_m", f"circle area exceeds {max_area_km2:.0f} km²")])
    repairs = ["split at the antimeridian"] if isinstance(circle, MultiPolygon) else []
    circle = orient_ccw(circle)
    return ParsedGeometry(
        geometry=circle, repaired=False, repairs=repairs, area_m2=area_m2, n_vertices=count_vertices(circle)
    )


def to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """GeoJSON mapping with plain lists (msgspec/json friendly)."""

    def listify(x: Any) -> Any:
        if isinstance(x, (list, tuple)):
            return [listify(v) for v in x]
        return x

    m = dict(mapping(geom))
    if "coordinates" in m:
        m["coordinates"] = listify(m["coordinates"])
    if "geometries" in m:
        m["geometries"] = [to_geojson(g) for g in getattr(geom, "geoms", ())]
    return m


def simplify_covering(geom: BaseGeometry, max_vertices: int) -> tuple[Polygonal, float]:
    """A polygon with at most ``max_vertices`` vertices that still contains all of ``geom``.

    Works in a local metric projection: buffer outward by ``d``, drop holes, simplify with a
    tolerance below ``d``, check containment in lon/lat, and double ``d`` until both hold. Returns
    the covering geometry and the extra area it adds (m²). For public alerts (CAP ``<polygon>``).
    """
    if max_vertices < 4:
        raise ValueError("max_vertices must be >= 4")
    src = _polygonal(geom)
    if src.is_empty:
        raise ValueError("empty geometry")
    if count_vertices(src) <= max_vertices:
        return src, 0.0
    base_area = geodesic_area_m2(src)
    local, inv = to_local_metres(src)
    minx, miny, maxx, maxy = local.bounds
    size = max(maxx - minx, maxy - miny, 1.0)
    d = size * 0.002
    for _ in range(40):
        grown = shapely.buffer(local, d, quad_segs=2)
        shells = [Polygon(p.exterior) for p in polygonal_parts(grown)]
        simplified = shapely.simplify(shapely.union_all(shells), d * 0.5, preserve_topology=True)
        cand = orient_ccw(from_local_metres(simplified, inv))
        if count_vertices(cand) <= max_vertices and shapely.covers(cand, src):
            return cand, max(geodesic_area_m2(cand) - base_area, 0.0)
        d *= 2.0
    raise ValueError(f"could not cover the geometry with {max_vertices} vertices")


__all__ = [
    "MAX_AREA_KM2",
    "MAX_VERTICES",
    "GeometryError",
    "ParsedGeometry",
    "buffer_geometry_m",
    "count_vertices",
    "orient_ccw",
    "parse_geojson",
    "parse_point_radius",
    "simplify_covering",
    "to_geojson",
    "validate_geojson",
]
