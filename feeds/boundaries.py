"""US county boundaries from the us-atlas TopoJSON (npm ``us-atlas``, ``counties-10m.json``).

us-atlas ships a TopoJSON *Topology*: ``arcs`` (shared polylines), an optional ``transform``
(``scale``/``translate``; when present the arcs are quantized and delta-encoded: each position
after the first is an offset from the previous one), and ``objects.counties`` — a
GeometryCollection of Polygon/MultiPolygon geometries whose ``arcs`` are indexes into the
arc list (a negative index ``~i`` means arc ``i`` reversed) and whose ``id`` is the 5-digit
county FIPS code. :func:`topojson_to_features` turns it into GeoJSON features keyed by FIPS,
ready for the server's boundaries table.

NWS alerts name counties as SAME ``0SSCCC`` (a leading digit, then state + county FIPS) or
UGC ``SSCnnn`` (state abbreviation, ``C``, county FIPS); both map to ``SSCCC`` here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

STATE_FIPS: dict[str, str] = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09",
    "DE": "10", "DC": "11", "FL": "12", "GA": "13", "HI": "15", "ID": "16", "IL": "17",
    "IN": "18", "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23", "MD": "24",
    "MA": "25", "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31",
    "NV": "32", "NH": "33", "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38",
    "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44", "SC": "45", "SD": "46",
    "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54",
    "WI": "55", "WY": "56", "AS": "60", "GU": "66", "MP": "69", "PR": "72", "VI": "78",
}  # fmt: skip
"""USPS state/territory abbreviation → 2-digit state FIPS code."""


def same_to_fips(code: str) -> str | None:
    """SAME ``0SSCCC`` → ``SSCCC``; None when it is not a 6-digit code."""
    code = code.strip()
    if len(code) == 6 and code.isdigit():
        return code[1:]
    return None


def ugc_to_fips(code: str) -> str | None:
    """County UGC ``SSCnnn`` → ``SSCCC``; None for zones (``SSZnnn``) and unknown states."""
    code = code.strip().upper()
    if len(code) == 6 and code[2] == "C" and code[3:].isdigit():
        state = STATE_FIPS.get(code[:2])
        return f"{state}{code[3:]}" if state else None
    return None


def _decode_arcs(topology: Mapping[str, Any]) -> list[np.ndarray]:
    transform = topology.get("transform")
    arcs_out: list[np.ndarray] = []
    for arc in topology["arcs"]:
        pts = np.asarray(arc, dtype=np.float64)[:, :2]
        if transform:
            pts = np.cumsum(pts, axis=0)
            pts = pts * np.asarray(transform["scale"], dtype=np.float64) + np.asarray(
                transform["translate"], dtype=np.float64
            )
        arcs_out.append(pts)
    return arcs_out


def _ring(indexes: list[int], arcs: list[np.ndarray]) -> list[tuple[float, float]]:
    parts: list[np.ndarray] = []
    for k, idx in enumerate(indexes):
        pts = arcs[~idx][::-1] if idx < 0 else arcs[idx]
        parts.append(pts if k == 0 else pts[1:])
    joined = np.concatenate(parts) if parts else np.empty((0, 2))
    return [(round(float(x), 6), round(float(y), 6)) for x, y in joined]


def _polygon(rings: list[list[int]], arcs: list[np.ndarray]) -> list[list[tuple[float, float]]]:
    return [_ring(r, arcs) for r in rings]


def _geometry(geom: Mapping[str, Any], arcs: list[np.ndarray]) -> dict[str, Any] | None:
    kind = geom.get("type")
    if kind == "Polygon":
        polys = [_polygon(geom["arcs"], arcs)]
    elif kind == "MultiPolygon":
        polys = [_polygon(p, arcs) for p in geom["arcs"]]
    else:
        return None
    coords = []
    for poly in polys:
        rings = [[list(pt) for pt in ring] for ring in poly if len(ring) >= 4]
        if rings and len(poly[0]) >= 4:
            coords.append(rings)
    if not coords:
        return None
    if len(coords) == 1:
        return {"type": "Polygon", "coordinates": coords[0]}
    return {"type": "MultiPolygon", "coordinates": coords}


def topojson_to_features(topology: Mapping[str, Any], object_name: str = "counties") -> dict[str, dict[str, Any]]:
    """Decode one object of a TopoJSON topology into GeoJSON Features keyed by their ``id``.

    Raises ValueError when the document is not a Topology or lacks ``object_name``.
    """
    if topology.get("type") != "Topology" or object_name not in topology.get("objects", {}):
        raise ValueError(f"not a TopoJSON topology with object {object_name!r}")
    arcs = _decode_arcs(topology)
    out: dict[str, dict[str, Any]] = {}
    for geom in topology["objects"][object_name].get("geometries", []):
        fid = geom.get("id")
        if fid is None:
            continue
        geometry = _geometry(geom, arcs)
        if geometry is None:
            continue
        out[str(fid)] = {
            "type": "Feature",
            "id": str(fid),
            "properties": dict(geom.get("properties") or {}),
            "geometry": geometry,
        }
    return out


def load_us_atlas_counties(path: Path) -> dict[str, dict[str, Any]]:
    """Read ``counties-10m.json`` and return county features keyed by 5-digit FIPS."""
    return topojson_to_features(json.loads(path.read_bytes()), "counties")


class CountyResolver:
    """A :class:`feeds.nws.ZoneResolver` over county features in memory (FIPS → Feature).

    Answers county UGCs (``IAC113``), SAME codes (``019113``) and bare FIPS (``19113``);
    forecast/fire zones (``SSZnnn``) are left to another resolver (None here).
    """

    def __init__(self, counties: Mapping[str, Mapping[str, Any]]) -> None:
        self._counties = counties

    async def geometry_for(self, code: str) -> dict[str, Any] | None:
        fips = ugc_to_fips(code) or same_to_fips(code) or (code if len(code) == 5 and code.isdigit() else None)
        if fips is None:
            return None
        feature = self._counties.get(fips)
        return dict(feature["geometry"]) if feature else None


__all__ = [
    "STATE_FIPS",
    "CountyResolver",
    "load_us_atlas_counties",
    "same_to_fips",
    "topojson_to_features",
    "ugc_to_fips",
]
