"""GDACS RSS (``gdacs.org/xml/rss.xml``, ``rss_24h.xml``, ``rss_7d.xml``) → hazards.

The files start with a UTF-8 byte-order mark. Per item: ``georss:point`` (``lat lon``),
``gdacs:bbox`` in **lonmin lonmax latmin latmax** order (as the feed's own comment says),
``gdacs:alertlevel`` Green/Orange/Red, ``gdacs:eventtype`` EQ/TC/FL/VO/DR/WF,
``gdacs:eventid`` + ``gdacs:episodeid`` (id and version), ``gdacs:fromdate``/``todate``
(RFC 822) and ``gdacs:iscurrent``.

The hazard geometry is the bbox (the only area the RSS carries); ``kind`` is the event type
code. Alert levels map to severities as GDACS defines them: Red (high humanitarian impact) →
extreme, Orange (medium) → severe, Green (low) → minor.

Validity. ``gdacs:todate`` is the time of the event's latest episode, not an end: for a current
event it is usually already past, so it cannot be ``valid_until`` (the fence evaluator would end
the hazard at once). The rule:

* an item with ``gdacs:iscurrent`` false, or an explicit alert level ``none``, is ``expired``
  (its hazard ends; ``valid_until`` is its ``todate``);
* a current item is active until ``max(todate, fetch time) + HORIZON_H[event type]``: 24 h for
  earthquakes and tsunamis, 72 h for cyclones, floods, volcanoes and wildfires, 14 days for
  droughts (updated far less often), 48 h for anything else. GDACS publishes a new episode (a
  new ``version``) well within those horizons while an event goes on, and each new episode moves
  ``valid_until`` on. A repeat of the same episode changes nothing (the hazard lifecycle), so its
  ``valid_until`` is the one computed when that episode was first seen;
* an event that leaves the feed ends when its ``valid_until`` has passed (the sink's sweep), or
  earlier if it comes back as not current.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Severity, Status
from feeds.shapes import bbox_polygon, valid_lon_lat
from feeds.times import TimeFormatError, parse_rfc822
from feeds.xmlsafe import child, local, parse_xml, text

SOURCE = "gdacs"
EVENT_TYPES = {
    "EQ": "earthquake",
    "TC": "tropical cyclone",
    "FL": "flood",
    "VO": "volcano",
    "DR": "drought",
    "WF": "wildfire",
    "TS": "tsunami",
}
_LEVELS: dict[str, Severity] = {"red": "extreme", "orange": "severe", "green": "minor"}
HORIZON_H: dict[str, float] = {"EQ": 24, "TS": 24, "TC": 72, "FL": 72, "VO": 72, "WF": 72, "DR": 14 * 24}
"""How long a current event stays valid after ``max(todate, fetch time)``, hours, by event type."""
DEFAULT_HORIZON_H = 48.0


def _point(item: etree._Element) -> tuple[float, float] | None:
    georss = text(item, "point")
    if georss:
        parts = georss.replace(",", " ").split()
        if len(parts) == 2 and valid_lon_lat(parts[1], parts[0]):
            return (float(parts[1]), float(parts[0]))
    geo = child(item, "Point")
    if geo is not None:
        lat, lon = text(geo, "lat"), text(geo, "long")
        if valid_lon_lat(lon, lat):
            return (float(lon or 0), float(lat or 0))
    return None


def _bbox(value: str | None) -> dict[str, Any] | None:
    """``lonmin lonmax latmin latmax`` → GeoJSON polygon (split when it crosses ±180)."""
    if not value:
        return None
    parts = value.split()
    if len(parts) != 4:
        raise ValueError(f"bbox needs 4 numbers, got {value!r}")
    lon_min, lon_max, lat_min, lat_max = (float(p) for p in parts)
    lon_min = (lon_min + 180.0) % 360.0 - 180.0 if abs(lon_min) > 180 else lon_min
    lon_max = (lon_max + 180.0) % 360.0 - 180.0 if abs(lon_max) > 180 else lon_max
    return bbox_polygon(lon_min, lon_max, lat_min, lat_max)


def parse_item(item: etree._Element, now: datetime) -> tuple[HazardItem | None, ItemError | None]:
    """One ``<item>`` → (hazard, None) or (None, error)."""
    event_type = (text(item, "eventtype") or "").upper()
    event_id = text(item, "eventid")
    ext_id = f"{event_type}{event_id}" if event_type and event_id else text(item, "guid")
    if not ext_id or not event_id:
        return None, ItemError(ext_id, "item without gdacs:eventtype/eventid")
    episode = text(item, "episodeid") or text(item, "version") or "0"
    point = _point(item)
    try:
        geometry = _bbox(text(item, "bbox"))
    except ValueError as exc:
        return None, ItemError(ext_id, f"bad gdacs:bbox: {exc}")
    if geometry is None and point is None:
        return None, ItemError(ext_id, "no georss:point and no gdacs:bbox")
    try:
        valid_from = parse_rfc822(text(item, "fromdate"))
        todate = parse_rfc822(text(item, "todate"))
    except TimeFormatError as exc:
        return None, ItemError(ext_id, str(exc))
    level = (text(item, "alertlevel") or "").lower()
    current = (text(item, "iscurrent") or "true").lower() == "true" and level != "none"
    status: Status = "active" if current else "expired"
    valid_until = todate
    if current:
        latest = max(todate or valid_from or now, now)
        valid_until = latest + timedelta(hours=HORIZON_H.get(event_type, DEFAULT_HORIZON_H))
    severity_el = child(item, "severity")
    raw: dict[str, Any] = {
        "eventtype": event_type,
        "event": EVENT_TYPES.get(event_type, event_type.lower()),
        "eventname": text(item, "eventname"),
        "episodeid": episode,
        "alertlevel": text(item, "alertlevel"),
        "episodealertlevel": text(item, "episodealertlevel"),
        "iscurrent": current,
        "country": text(item, "country"),
        "iso3": text(item, "iso3"),
        "severity_text": severity_el.text.strip() if severity_el is not None and severity_el.text else None,
        "cap": text(item, "cap"),
        "todate": todate.isoformat() if todate else None,
    }
    if severity_el is not None:
        raw["severity_value"] = severity_el.get("value")
        raw["severity_unit"] = severity_el.get("unit")
    hazard = HazardItem(
        source=SOURCE,
        external_id=ext_id,
        version=episode,
        kind=event_type or "unknown",
        severity=_LEVELS.get(level, "unknown"),
        title=text(item, "title") or ext_id,
        description=text(item, "description") or "",
        geometry=geometry,
        point=point,
        valid_from=valid_from,
        valid_until=valid_until,
        status=status,
        raw=raw,
        url=text(item, "link"),
    )
    return hazard, None


def parse(data: bytes, options: Mapping[str, Any] | None = None, now: datetime | None = None) -> ParseResult:
    """Parse a GDACS RSS document (BOM tolerated). Raises :class:`FeedFormatError` if unreadable."""
    root = parse_xml(data)
    channel = child(root, "channel") if local(root.tag) == "rss" else None
    if channel is None:
        raise FeedFormatError("GDACS: not an RSS document with a channel")
    current = now or datetime.now(UTC)
    result = ParseResult()
    for el in channel:
        if local(el.tag) != "item":
            continue
        hazard, error = parse_item(el, current)
        if hazard is not None:
            result.items.append(hazard)
        if error is not None:
            result.errors.append(error)
    return result
