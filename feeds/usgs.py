"""USGS earthquake GeoJSON summary feeds (``/earthquakes/feed/v1.0/summary/*.geojson``) → hazards.

Each quake becomes a point plus an *impact area*: a geodesic circle (WGS84, split at ±180°)
whose radius follows :func:`impact_radius_km`. Version is the ``updated`` epoch-ms value, so a
re-reviewed event (new magnitude, location) is an update. ``status`` arrives in mixed case
(``automatic``/``AUTOMATIC``/``reviewed``/``REVIEWED``) and is lower-cased into ``raw``; a
``deleted`` status (or a ``,deleted,`` mark in ``types``) ends the hazard. Negative depths
(events above sea level, e.g. quarry blasts in mountains) are kept as they are; ``tz`` is the
local offset in minutes (nullable). The GeoJSONP form ``eqfeed_callback({...});`` is accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Severity, Status
from feeds.shapes import geodesic_circle, valid_lon_lat
from feeds.times import from_epoch_ms

SOURCE = "usgs"
MIN_RADIUS_KM = 2.0
MAX_RADIUS_KM = 1000.0
DEFAULT_TTL_S = 24 * 3600.0
_PAGER: dict[str, Severity] = {"red": "extreme", "orange": "severe", "yellow": "moderate", "green": "minor"}


def impact_radius_km(magnitude: float | None) -> float:
    """Radius of the area treated as affected, from the magnitude (sitrep's rule).

    ``r_km = 10 ** (0.4 * M - 0.6)``, clamped to ``[2, 1000]`` km: M3 → 4 km, M4 → 10 km,
    M5 → 25 km, M6 → 63 km, M7 → 158 km, M8 → 398 km. This is an operational convention, not
    a ground-motion model: the radius grows ×2.5 per magnitude unit (the affected *area* ×6.3),
    the order of growth felt areas show in felt-area/magnitude studies (e.g. Nuttli & Zollweg,
    BSSA 64(1):73, 1974), scaled so that it marks "shaking strong enough to matter to a
    responder" rather than "barely felt". A missing or negative magnitude gets the minimum.
    """
    if magnitude is None or not math.isfinite(magnitude):
        return MIN_RADIUS_KM
    radius = float(10.0 ** (0.4 * float(magnitude) - 0.6))
    return min(max(radius, MIN_RADIUS_KM), MAX_RADIUS_KM)


def severity_for(magnitude: float | None, alert: str | None, tsunami: int | None) -> Severity:
    """PAGER alert colour when present; else magnitude (≥7 extreme, ≥6 severe, ≥4.5 moderate).

    A tsunami flag raises the result to at least ``severe``.
    """
    sev: Severity
    if alert and alert.lower() in _PAGER:
        sev = _PAGER[alert.lower()]
    elif magnitude is None:
        sev = "unknown"
    elif magnitude >= 7.0:
        sev = "extreme"
    elif magnitude >= 6.0:
        sev = "severe"
    elif magnitude >= 4.5:
        sev = "moderate"
    else:
        sev = "minor"
    if tsunami and sev in ("moderate", "minor", "unknown"):
        sev = "severe"
    return sev


def strip_jsonp(data: bytes) -> bytes:
    """Remove a ``callback( … );`` wrapper (GeoJSONP) and a UTF-8 BOM if present."""
    body = data.strip()
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:].lstrip()
    if body[:1] not in (b"{", b"[") and b"(" in body[:100]:
        body = body[body.index(b"(") + 1 :]
        body = body.rstrip().rstrip(b";").rstrip()
        if body.endswith(b")"):
            body = body[:-1]
    return body


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_feature(feature: Mapping[str, Any], now: datetime, ttl_s: float) -> tuple[HazardItem | None, str | None]:
    """One quake Feature → (item, None) or (None, reason)."""
    props = feature.get("properties")
    ext_id = feature.get("id")
    if not isinstance(props, Mapping) or not ext_id:
        return None, "feature without id or properties"
    geom = feature.get("geometry")
    coords = geom.get("coordinates") if isinstance(geom, Mapping) else None
    if not isinstance(coords, list) or len(coords) < 2 or not valid_lon_lat(coords[0], coords[1]):
        return None, f"bad point geometry {str(geom)[:80]!r}"
    lon, lat = float(coords[0]), float(coords[1])
    depth_km = _num(coords[2]) if len(coords) > 2 else None
    mag = _num(props.get("mag"))
    updated = props.get("updated")
    event_time = from_epoch_ms(_num(props.get("time")))
    updated_time = from_epoch_ms(_num(updated))
    status_text = str(props.get("status") or "").lower()
    types = str(props.get("types") or "").lower()
    status: Status = "active"
    if status_text == "deleted" or ",deleted," in types:
        status = "cancelled"
    valid_until = event_time + timedelta(seconds=ttl_s) if event_time else None
    if status == "active" and valid_until is not None and valid_until <= now:
        status = "expired"
    radius_km = impact_radius_km(mag)
    tz = props.get("tz")
    raw = {
        "mag": mag,
        "magType": props.get("magType"),
        "place": props.get("place"),
        "depth_km": depth_km,
        "status": status_text or None,
        "type": props.get("type"),
        "tsunami": props.get("tsunami"),
        "alert": props.get("alert"),
        "felt": props.get("felt"),
        "sig": props.get("sig"),
        "tz_min": tz if isinstance(tz, int) else None,
        "radius_km": round(radius_km, 3),
    }
    item = HazardItem(
        source=SOURCE,
        external_id=str(ext_id),
        version=str(updated if updated is not None else props.get("time")),
        kind=str(props.get("type") or "earthquake"),
        severity=severity_for(mag, props.get("alert"), props.get("tsunami")),
        title=str(props.get("title") or props.get("place") or ext_id),
        description=str(props.get("place") or ""),
        geometry=geodesic_circle(lon, lat, radius_km * 1000.0),
        point=(lon, lat),
        valid_from=event_time,
        valid_until=valid_until,
        status=status,
        raw={**raw, "updated_at": updated_time.isoformat() if updated_time else None},
        url=props.get("url") if isinstance(props.get("url"), str) else None,
    )
    return item, None


def parse(data: bytes, options: Mapping[str, Any] | None = None, now: datetime | None = None) -> ParseResult:
    """Parse a USGS summary GeoJSON (or GeoJSONP). Options: ``ttl_s`` (hazard lifetime after the
    event, default 24 h), ``min_magnitude`` (skip smaller events silently)."""
    opts = options or {}
    try:
        doc = msgspec.json.decode(strip_jsonp(data))
    except msgspec.DecodeError as exc:
        raise FeedFormatError(f"USGS: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise FeedFormatError("USGS: not a FeatureCollection with features")
    current = now or datetime.now(UTC)
    ttl_s = float(opts.get("ttl_s", DEFAULT_TTL_S))
    min_mag = opts.get("min_magnitude")
    result = ParseResult()
    for feature in doc["features"]:
        if not isinstance(feature, Mapping):
            result.errors.append(ItemError(None, "feature is not an object"))
            continue
        item, reason = parse_feature(feature, current, ttl_s)
        if item is None:
            result.errors.append(ItemError(str(feature.get("id") or "") or None, reason or "unreadable"))
            continue
        mag = item.raw.get("mag")
        if min_mag is not None and (mag is None or mag < float(min_mag)):
            continue
        result.items.append(item)
    return result
