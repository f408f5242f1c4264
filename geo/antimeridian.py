"""Antimeridian handling: unwrap rings whose longitudes jump by more than 180°, split them back.

A ring is *unwrapped* by adding ±360° to each longitude so that consecutive points never jump by
more than 180°; the resulting planar polygon may extend beyond ±180°. *Splitting* clips it into the
three 360°-wide windows and shifts each piece back into [-180, 180], giving a MultiPolygon whose
parts meet at the antimeridian.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

Coords = Sequence[Sequence[float]]


class PoleEncirclingRing(ValueError):
    """The unwrapped ring does not close: it goes around a pole (not supported)."""


def has_jump(lons: npt.ArrayLike) -> bool:
    """True when consecutive longitudes jump by more than 180° (an antimeridian crossing)."""
    arr = np.asarray(lons, dtype=np.float64)
    if arr.size < 2:
        return False
    return bool(np.any(np.abs(np.diff(arr)) > 180.0))


def unwrap_lons(lons: npt.ArrayLike, *, reference: float | None = None) -> npt.NDArray[np.float64]:
    """Longitudes made continuous (no step > 180°), shifted by 360° so the first is near ``reference``."""
    arr = np.asarray(lons, dtype=np.float64)
    if arr.size == 0:
        return arr.copy()
    steps = np.diff(arr)
    wraps = np.where(steps > 180.0, -360.0, np.where(steps < -180.0, 360.0, 0.0))
    out = arr + np.concatenate(([0.0], np.cumsum(wraps)))
    if reference is not None:
        shift = 360.0 * np.round((reference - out[0]) / 360.0)
        out = out + shift
    return out


def unwrap_ring(coords: Coords, *, reference: float | None = None) -> list[tuple[float, float]]:
    """Ring coordinates with continuous longitudes. Raises PoleEncirclingRing if it does not close."""
    arr = np.asarray(coords, dtype=np.float64)
    lons = unwrap_lons(arr[:, 0], reference=reference)
    if arr.shape[0] >= 2 and abs(lons[-1] - lons[0]) > 1e-9 and np.isclose(arr[-1, 0], arr[0, 0]):
        raise PoleEncirclingRing("ring encircles a pole")
    return list(zip(lons.tolist(), arr[:, 1].tolist(), strict=True))


_WINDOWS = ((-540.0, -180.0, 360.0), (-180.0, 180.0, 0.0), (180.0, 540.0, -360.0))


def split_unwrapped(geom: BaseGeometry) -> Polygon | MultiPolygon:
    """Clip a polygonal geometry whose longitudes may exceed ±180 into parts within [-180, 180]."""
    parts: list[Polygon] = []
    for lo, hi, shift in _WINDOWS:
        piece = geom.intersection(box(lo, -90.0, hi, 90.0))
        if piece.is_empty:
            continue
        if shift:
            piece = shapely.transform(piece, lambda xy, s=shift: xy + np.array([s, 0.0]))
        parts.extend(polygonal_parts(piece))
    if len(parts) == 1:
        return parts[0]
    return MultiPolygon(parts)


def polygonal_parts(geom: BaseGeometry) -> list[Polygon]:
    """Every non-empty Polygon inside ``geom`` (collections are flattened, lines and points dropped)."""
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    out: list[Polygon] = []
    for sub in getattr(geom, "geoms", ()):
        out.extend(polygonal_parts(sub))
    return out


def crosses_antimeridian_split(geom: BaseGeometry) -> bool:
    """True when ``geom`` has parts touching both +180 and -180 (it was split at the antimeridian)."""
    if geom.is_empty:
        return False
    min_lon, _, max_lon, _ = geom.bounds
    return bool(min_lon <= -180.0 + 1e-12 and max_lon >= 180.0 - 1e-12)


def unwrap_geometry(geom: BaseGeometry) -> BaseGeometry:
    """Join the parts of an antimeridian-split geometry into one continuous planar geometry.

    Parts west of the antimeridian (negative longitudes) are shifted by +360°. Geometries that do
    not touch both ±180 are returned unchanged.
    """
    if not crosses_antimeridian_split(geom):
        return geom
    shifted: list[Polygon] = []
    for part in polygonal_parts(geom):
        if part.bounds[2] <= 0.0:
            part = shapely.transform(part, lambda xy: xy + np.array([360.0, 0.0]))
        shifted.append(part)
    merged = shapely.union_all(shifted)
    return merged
