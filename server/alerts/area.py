"""The area of an alert: a drawn polygon, a hazard's shape, or a buffer around an incident.

CAP polygons have no holes and phones handle few vertices, so the stored area is the union of the
outer rings, simplified to the vertex budget by :func:`geo.geometry.simplify_covering` (which
keeps the whole original inside). The extra area both steps add is reported to the composer.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.geodesy import buffer_geometry_m, geodesic_area_m2
from geo.geometry import GeometryError, count_vertices, orient_ccw, parse_geojson, simplify_covering

from ..errors import InvalidGeometry, InvalidInput, NotFound, field_error
from .model import AreaIn

MAX_AREA_KM2 = 250_000.0
"""Larger than any state a county EOC would alert; a bigger area is almost surely a mistake."""
MAX_INPUT_VERTICES = 20_000
MAX_INCIDENT_RADIUS_M = 100_000.0


@dataclass(frozen=True)
class ResolvedArea:
    geometry: BaseGeometry
    extra_m2: float
    simplified: bool
    description: str
    source: dict[str, str]


def _shells(geom: BaseGeometry) -> BaseGeometry:
    parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    polys = [Polygon(p.exterior) for p in parts if isinstance(p, Polygon) and not p.is_empty]
    if not polys:
        raise InvalidGeometry("area is empty", errors=[field_error("area", "no polygon")])
    merged = shapely.union_all(polys)
    return orient_ccw(merged)


async def resolve_area(conn: asyncpg.Connection, area: AreaIn, *, max_vertices: int) -> ResolvedArea:
    given = [area.geometry is not None, area.hazard_id is not None, area.incident_id is not None]
    if sum(given) != 1:
        raise InvalidInput(
            "give exactly one of geometry, hazard_id, incident_id",
            errors=[field_error("area", "exactly one of geometry, hazard_id, incident_id")],
        )
    if area.geometry is not None:
        try:
            geom = parse_geojson(area.geometry, max_vertices=MAX_INPUT_VERTICES, max_area_km2=MAX_AREA_KM2)
        except GeometryError as exc:
            raise InvalidGeometry(
                "invalid area",
                errors=[field_error(f"area.{f}" if not f.startswith("area") else f, m) for f, m in exc.errors],
            ) from None
        source = {"kind": "drawn"}
        description = area.description or "Drawn area"
    elif area.hazard_id is not None:
        row = await conn.fetchrow(
            "SELECT ST_AsBinary(geom) AS wkb, title, kind FROM hazards WHERE id = $1", area.hazard_id
        )
        if row is None:
            raise NotFound("no such hazard")
        geom = shapely.from_wkb(row["wkb"])
        source = {"kind": "hazard", "hazard_id": str(area.hazard_id)}
        description = area.description or row["title"] or row["kind"]
    else:
        radius = area.radius_m
        if radius is None or not (0 < radius <= MAX_INCIDENT_RADIUS_M):
            raise InvalidInput(
                "radius_m out of range",
                errors=[field_error("area.radius_m", f"0 < radius_m <= {MAX_INCIDENT_RADIUS_M:.0f}")],
            )
        row = await conn.fetchrow(
            "SELECT ST_AsBinary(geom) AS wkb, title FROM incidents WHERE id = $1", area.incident_id
        )
        if row is None:
            raise NotFound("no such incident")
        geom = buffer_geometry_m(shapely.from_wkb(row["wkb"]), radius)
        source = {"kind": "incident", "incident_id": str(area.incident_id), "radius_m": f"{radius:g}"}
        description = area.description or f"{radius:g} m around {row['title']}"
    return cover_area(geom, max_vertices=max_vertices, description=description, source=source)


def cover_area(geom: BaseGeometry, *, max_vertices: int, description: str, source: dict[str, str]) -> ResolvedArea:
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InvalidGeometry("area must be polygonal", errors=[field_error("area", "not a polygon")])
    if geodesic_area_m2(geom) > MAX_AREA_KM2 * 1e6:
        raise InvalidGeometry("area too large", errors=[field_error("area", f"larger than {MAX_AREA_KM2:.0f} km²")])
    base = geodesic_area_m2(geom)
    shells = _shells(geom)
    try:
        covering, _ = simplify_covering(shells, max_vertices)
    except ValueError as exc:
        raise InvalidGeometry("area cannot be simplified", errors=[field_error("area", str(exc))]) from None
    simplified = count_vertices(shells) > max_vertices
    covering = _rounded_outward(covering)
    extra = max(geodesic_area_m2(covering) - base, 0.0)
    return ResolvedArea(covering, extra, simplified, description[:500], source)


def _rounded_outward(geom: BaseGeometry) -> BaseGeometry:
    """Coordinates as CAP will print them (6 decimals), still covering ``geom``.

    Rounding moves a vertex by at most ~0.1 m; when that uncovers a sliver the rounded ring is grown
    by a few centimetres and rounded again.
    """
    rounded = shapely.set_precision(geom, 1e-6)
    if shapely.covers(rounded, geom):
        return orient_ccw(rounded)
    for pad in (2e-6, 1e-5, 1e-4):
        grown = shapely.set_precision(shapely.buffer(geom, pad, join_style="mitre"), 1e-6)
        if shapely.covers(grown, geom):
            return orient_ccw(grown)
    return geom
