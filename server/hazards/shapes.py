"""Request geometry → validated shapely geometry, H3 cover rows, and the SQL/bus forms of a shape.

Hazards and geofences accept a GeoJSON Polygon/MultiPolygon (``geometry``) or a point with a radius
(``point: [lon, lat]`` + ``radius_m``; a geodesic circle). Validation and repair are
:mod:`geo.geometry`'s; its errors become a 422 with per-field ``errors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.cover import PolygonCover
from geo.geometry import GeometryError, parse_point_radius, validate_geojson

from ..errors import InvalidGeometry


def _field(name: str, *, point: bool) -> str:
    if point:
        return "point" if name.startswith("geometry") else name
    return name if name.startswith("geometry") else f"geometry.{name}"


def parse_shape(geometry: Any, point: Any, radius_m: Any, *, required: bool = True) -> BaseGeometry | None:
    """The validated (and repaired) polygonal geometry, or ``None`` when neither form was given and
    ``required`` is false. Raises :class:`InvalidGeometry` (422) with per-field errors."""
    if geometry is not None and point is not None:
        raise InvalidGeometry(
            "give either geometry or point + radius_m",
            errors=[{"field": "point", "message": "not allowed together with geometry"}],
        )
    if isinstance(geometry, dict) and geometry.get("type") == "Point":
        point, geometry = geometry.get("coordinates"), None
    try:
        if geometry is not None:
            if radius_m is not None:
                raise GeometryError([("radius_m", "only allowed with point")])
            return validate_geojson(geometry).geometry
        if point is not None:
            if radius_m is None:
                raise GeometryError([("radius_m", "required with point")])
            return parse_point_radius(point, radius_m).geometry
    except GeometryError as exc:
        is_point = point is not None
        raise InvalidGeometry(
            str(exc), errors=[{"field": _field(f, point=is_point), "message": m} for f, m in exc.errors]
        ) from None
    if required:
        raise InvalidGeometry(
            "geometry is required",
            errors=[{"field": "geometry", "message": "give a GeoJSON Polygon/MultiPolygon, or point + radius_m"}],
        )
    return None


def cover_rows(geom: BaseGeometry) -> tuple[int, list[int], list[bool]]:
    """``(res, cells, interior)`` arrays for one unnest insert into ``hazard_cells``."""
    cover = PolygonCover(geom)
    cells: list[int] = []
    interior: list[bool] = []
    for cell, inner in cover.cells():
        cells.append(int(np.int64(cell)))
        interior.append(inner)
    return cover.res, cells, interior


def wkb(geom: BaseGeometry) -> bytes:
    out: bytes = shapely.to_wkb(geom, include_srid=False)
    return out


def from_wkb(data: bytes) -> BaseGeometry:
    return shapely.from_wkb(data)


def bbox(geom: BaseGeometry) -> tuple[float, float, float, float]:
    b = geom.bounds
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
