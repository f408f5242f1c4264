"""The OsmAnd / Traccar Client live-tracking protocol (see shared/PROTOCOLS.md), parsed purely.

Two shapes reach ``/osmand``: key/value fields (query string, or a form body when the query is
empty) and the JSON body of the Transistorsoft background-geolocation plugin. Both become
:class:`OsmandFix` values; authentication and storage happen elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .fixes import Rejected

KNOTS_PER_MPS = 1.943844

_CONSUMED = frozenset(
    {
        "id",
        "deviceid",
        "timestamp",
        "lat",
        "lon",
        "location",
        "speed",
        "bearing",
        "heading",
        "altitude",
        "accuracy",
        "batt",
        "token",
    }
)


@dataclass(slots=True)
class OsmandFix:
    unique_id: str
    fix_time: datetime
    lon: float
    lat: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def parse_time(raw: str | None, now: datetime | None = None) -> datetime:
    """Unix seconds (below 2^31) or milliseconds, ISO 8601 (has a ``T``), or ``yyyy-MM-dd HH:mm:ss``."""
    if raw is None or not raw.strip():
        return now or datetime.now(UTC)
    text = raw.strip()
    try:
        if "T" in text:
            value = datetime.fromisoformat(text.replace("z", "Z"))
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if "-" in text[1:] and ":" in text:
            return datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        number = float(text)
        if not math.isfinite(number) or number < 0:
            raise ValueError(text)
        seconds = number if number < 2**31 else number / 1000.0
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise Rejected("invalid_fix_time", f"timestamp {raw!r} is not a time") from exc


def _number(name: str, raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)  # surrounding whitespace is fine; "" and "  " raise
    except ValueError as exc:
        if not raw.strip():
            return None
        raise Rejected("invalid_number", f"{name}={raw!r} is not a number") from exc


def _attribute(raw: str) -> Any:
    low = raw.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        number = float(raw)
    except ValueError:
        return raw
    if not math.isfinite(number):
        return raw
    return int(number) if number.is_integer() and "." not in raw else number


def device_of(fields: dict[str, str]) -> str | None:
    value = fields.get("id") or fields.get("deviceid")
    return value.strip() if value and value.strip() else None


def parse_fields(fields: dict[str, str], now: datetime | None = None) -> OsmandFix:
    """One fix from the key/value form; raises :class:`Rejected`."""
    unique_id = device_of(fields)
    if unique_id is None:
        raise Rejected("missing_device", "id is required")
    lat = _number("lat", fields.get("lat"))
    lon = _number("lon", fields.get("lon"))
    if (lat is None or lon is None) and fields.get("location"):
        parts = fields["location"].split(",")
        if len(parts) != 2:
            raise Rejected("invalid_coordinates", "location must be 'lat,lon'")
        lat, lon = _number("location", parts[0]), _number("location", parts[1])
    if lat is None or lon is None:
        raise Rejected("missing_coordinates", "lat and lon (or location) are required")
    knots = _number("speed", fields.get("speed"))
    heading = _number("bearing", fields.get("bearing") or fields.get("heading"))
    attributes = {k: _attribute(v) for k, v in fields.items() if k not in _CONSUMED}
    return OsmandFix(
        unique_id=unique_id,
        fix_time=parse_time(fields.get("timestamp"), now),
        lon=lon,
        lat=lat,
        speed_mps=None if knots is None else knots / KNOTS_PER_MPS,
        heading_deg=heading,
        altitude_m=_number("altitude", fields.get("altitude")),
        accuracy_m=_number("accuracy", fields.get("accuracy")),
        battery_pct=_number("batt", fields.get("batt")),
        attributes=attributes,
    )


def _float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("invalid_number", f"{name} is not a number")
    return float(value)


def parse_json(body: Any, now: datetime | None = None) -> tuple[str, list[OsmandFix]]:
    """The Transistorsoft JSON shape: ``device_id`` + ``location`` (an object or a list of them).

    ``coords.speed`` is m/s and ``battery.level`` 0–1; negative speed/heading mean "unknown".
    """
    if not isinstance(body, dict):
        raise Rejected("invalid_body", "expected a JSON object")
    device = body.get("device_id") or body.get("id") or body.get("deviceid")
    if not isinstance(device, str) or not device.strip():
        raise Rejected("missing_device", "device_id is required")
    locations = body.get("location")
    if isinstance(locations, dict):
        locations = [locations]
    if not isinstance(locations, list) or not locations:
        raise Rejected("invalid_body", "location is required")
    out = []
    for loc in locations:
        if not isinstance(loc, dict) or not isinstance(loc.get("coords"), dict):
            raise Rejected("invalid_body", "location.coords is required")
        coords = loc["coords"]
        lat, lon = _float(coords.get("latitude"), "latitude"), _float(coords.get("longitude"), "longitude")
        if lat is None or lon is None:
            raise Rejected("missing_coordinates", "coords.latitude and coords.longitude are required")
        speed = _float(coords.get("speed"), "speed")
        heading = _float(coords.get("heading"), "heading")
        battery = loc.get("battery") if isinstance(loc.get("battery"), dict) else {}
        level = _float(battery.get("level"), "battery.level")
        attributes: dict[str, Any] = {}
        for key in ("is_moving", "odometer", "event", "mock", "uuid", "extras"):
            if key in loc:
                attributes[key] = loc[key]
        if "is_charging" in battery:
            attributes["charge"] = battery["is_charging"]
        if isinstance(loc.get("activity"), dict) and "type" in loc["activity"]:
            attributes["activity"] = loc["activity"]["type"]
        raw_time = loc.get("timestamp")
        out.append(
            OsmandFix(
                unique_id=device.strip(),
                fix_time=parse_time(str(raw_time) if raw_time is not None else None, now),
                lon=lon,
                lat=lat,
                speed_mps=None if speed is None or speed < 0 else speed,
                heading_deg=None if heading is None or heading < 0 else heading,
                altitude_m=_float(coords.get("altitude"), "altitude"),
                accuracy_m=_float(coords.get("accuracy"), "accuracy"),
                battery_pct=None if level is None or level < 0 else level * 100.0,
                attributes=attributes,
            )
        )
    return device.strip(), out
