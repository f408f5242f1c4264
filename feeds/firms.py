"""NASA FIRMS active-fire CSV (MODIS and VIIRS) → fire areas.

Both layouts are recognised from the header: MODIS (``brightness``, numeric ``confidence``
0–100) and VIIRS (``bright_ti4``, ``instrument``, confidence ``l``/``n``/``h`` or
``low``/``nominal``/``high``). ``acq_time`` is ``HHMM`` but may arrive unpadded (``41`` is
00:41). VIIRS classes are scored like MODIS' documented ranges: low 20, nominal 60, high 90.

Hotspots at or above ``min_confidence`` (option, default 30: nominal and high) are put in
H3 cells (``h3_res``, default 7, ~5 km²); cells that touch (grid distance 1) form one fire
area, dissolved into (Multi)Polygon outlines. An area's id is its smallest cell plus the
first acquisition date, so the same fire keeps its id between polls while it does not merge
with a neighbour or spread past its smallest cell. The version changes when detections change.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
from shapely.geometry import shape

from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Severity, Status
from feeds.shapes import fold_antimeridian, to_geojson

SOURCE = "firms"
DEFAULT_RES = 7
DEFAULT_MIN_CONFIDENCE = 30.0
DEFAULT_TTL_S = 24 * 3600.0
VIIRS_CONFIDENCE = {"l": 20.0, "low": 20.0, "n": 60.0, "nominal": 60.0, "h": 90.0, "high": 90.0}
_REQUIRED = ("latitude", "longitude", "acq_date", "acq_time", "confidence")


class Hotspot:
    """One detection row that passed the filters."""

    __slots__ = ("acquired", "cell", "confidence", "frp", "lat", "lon")

    def __init__(self, lon: float, lat: float, acquired: datetime, confidence: float, frp: float, cell: str):
        self.lon, self.lat, self.acquired = lon, lat, acquired
        self.confidence, self.frp, self.cell = confidence, frp, cell


def confidence_score(value: str) -> float | None:
    """MODIS 0–100 as is; VIIRS ``l/n/h`` (or words) as 20/60/90; None when unreadable."""
    text = value.strip().lower()
    if text in VIIRS_CONFIDENCE:
        return VIIRS_CONFIDENCE[text]
    try:
        score = float(text)
    except ValueError:
        return None
    return score if 0.0 <= score <= 100.0 else None


def acquisition_time(acq_date: str, acq_time: str) -> datetime:
    """``2023-08-01`` + ``41`` (unpadded HHMM) → 2023-08-01T00:41Z."""
    hhmm = acq_time.strip().zfill(4)
    if len(hhmm) != 4 or not hhmm.isdigit():
        raise ValueError(f"bad acq_time {acq_time!r}")
    day = datetime.strptime(acq_date.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    return day + timedelta(hours=int(hhmm[:2]), minutes=int(hhmm[2:]))


def _components(cells: set[str]) -> list[list[str]]:
    """Connected components of cells under H3 adjacency (union-find)."""
    parent = {c: c for c in cells}

    def find(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for c in cells:
        for n in h3.grid_disk(c, 1):
            if n != c and n in parent:
                ra, rb = find(c), find(n)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for c in cells:
        groups.setdefault(find(c), []).append(c)
    return list(groups.values())


def _ring(points: Any) -> list[list[float]]:
    return [[round(x, 6), round(y, 6)] for x, y in points]


def outline(cells: list[str]) -> dict[str, Any] | None:
    """Dissolve adjacent H3 cells into a GeoJSON (Multi)Polygon (lon, lat; split at ±180)."""
    if len(cells) == 1:
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cells[0])]
        geo: dict[str, Any] = {"type": "Polygon", "coordinates": [_ring([*ring, ring[0]])]}
    else:
        raw = h3.cells_to_geo(cells)
        if raw["type"] == "Polygon":
            geo = {"type": "Polygon", "coordinates": [_ring(r) for r in raw["coordinates"]]}
        else:
            geo = {"type": "MultiPolygon", "coordinates": [[_ring(r) for r in p] for p in raw["coordinates"]]}
    lons = [pt[0] for pt in (geo["coordinates"][0] if geo["type"] == "Polygon" else geo["coordinates"][0][0])]
    if max(lons) - min(lons) > 180.0:  # a cell straddling the antimeridian: let shapely cut it
        return to_geojson(fold_antimeridian(shape(geo)))
    return geo


def _severity(total_frp: float) -> Severity:
    """Total fire radiative power of the area (MW): ≥1000 extreme, ≥300 severe, ≥50 moderate."""
    if total_frp >= 1000:
        return "extreme"
    if total_frp >= 300:
        return "severe"
    if total_frp >= 50:
        return "moderate"
    return "minor"


def read_hotspots(
    data: bytes, min_confidence: float, res: int, bbox: tuple[float, float, float, float] | None
) -> tuple[list[Hotspot], list[ItemError], str]:
    """Read and filter rows; returns (hotspots, row errors, instrument name)."""
    body = data.decode("utf-8-sig", "replace")
    reader = csv.reader(io.StringIO(body))
    header = [h.strip().lower() for h in next(reader, [])]
    if not all(k in header for k in _REQUIRED):
        raise FeedFormatError(f"FIRMS: header lacks {[k for k in _REQUIRED if k not in header]}")
    idx = {k: header.index(k) for k in header}
    instrument = "VIIRS" if "bright_ti4" in idx else "MODIS"
    i_lat, i_lon, i_date, i_time, i_conf = (idx[k] for k in _REQUIRED)
    i_frp = idx.get("frp")
    to_cell = h3.latlng_to_cell
    times: dict[tuple[str, str], datetime] = {}
    spots: list[Hotspot] = []
    errors: list[ItemError] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            lat, lon = float(row[i_lat]), float(row[i_lon])
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                raise ValueError("coordinates out of range")
            conf = confidence_score(row[i_conf])
            if conf is None:
                raise ValueError(f"bad confidence {row[i_conf]!r}")
            if conf < min_confidence:
                continue
            if bbox is not None and not (bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]):
                continue
            key = (row[i_date], row[i_time])
            acquired = times.get(key) or times.setdefault(key, acquisition_time(*key))
            frp = float(row[i_frp]) if i_frp is not None and row[i_frp].strip() else 0.0
        except (ValueError, IndexError) as exc:
            errors.append(ItemError(f"row {line_no}", f"unreadable row: {exc}"))
            continue
        spots.append(Hotspot(lon, lat, acquired, conf, frp, to_cell(lat, lon, res)))
    return spots, errors, instrument


def parse(data: bytes, options: Mapping[str, Any] | None = None, now: datetime | None = None) -> ParseResult:
    """Parse a FIRMS CSV into clustered fire areas.

    Options: ``min_confidence`` (0–100), ``h3_res``, ``ttl_s`` (an area stays active this long
    after its last detection, default 24 h), ``bbox`` ``(west, south, east, north)``.
    """
    opts = options or {}
    res = int(opts.get("h3_res", DEFAULT_RES))
    bbox_opt = opts.get("bbox")
    bbox = (float(bbox_opt[0]), float(bbox_opt[1]), float(bbox_opt[2]), float(bbox_opt[3])) if bbox_opt else None
    spots, errors, instrument = read_hotspots(
        data, float(opts.get("min_confidence", DEFAULT_MIN_CONFIDENCE)), res, bbox
    )
    current = now or datetime.now(UTC)
    ttl = timedelta(seconds=float(opts.get("ttl_s", DEFAULT_TTL_S)))
    by_cell: dict[str, list[Hotspot]] = {}
    for s in spots:
        by_cell.setdefault(s.cell, []).append(s)
    result = ParseResult(errors=errors)
    for cells in _components(set(by_cell)):
        members = [s for c in cells for s in by_cell[c]]
        first = min(s.acquired for s in members)
        last = max(s.acquired for s in members)
        total_frp = sum(s.frp for s in members)
        min_cell = min(cells, key=h3.str_to_int)
        geometry = outline(cells)
        if geometry is None:
            result.errors.append(ItemError(min_cell, "could not outline cells"))
            continue
        status: Status = "expired" if last + ttl <= current else "active"
        lon = sum(s.lon for s in members) / len(members)
        lat = sum(s.lat for s in members) / len(members)
        result.items.append(
            HazardItem(
                source=SOURCE,
                external_id=f"{min_cell}-{first:%Y%m%d}",
                version=f"{last:%Y%m%dT%H%M}-{len(members)}",
                kind="wildfire",
                severity=_severity(total_frp),
                title=f"Fire area: {len(members)} {instrument} detections",
                description=(f"{len(members)} hotspots in {len(cells)} H3 cells (res {res}), FRP {total_frp:.0f} MW"),
                geometry=geometry,
                point=(round(lon, 5), round(lat, 5)),
                valid_from=first,
                valid_until=last + ttl,
                status=status,
                raw={
                    "instrument": instrument,
                    "detections": len(members),
                    "cells": len(cells),
                    "h3_res": res,
                    # the cells themselves: the server stores them as the area's H3 cover without
                    # re-polyfilling the outline (server/feeds/covers.py)
                    "h3_cells": sorted(cells),
                    "frp_total_mw": round(total_frp, 2),
                    "max_confidence": max(s.confidence for s in members),
                    "last_detection": last.isoformat(),
                },
            )
        )
    return result
