"""api.weather.gov ``/alerts/active`` (and ``/alerts/active/zone/…``) GeoJSON → hazards.

* ``geometry`` is a Polygon when the warning is storm-based; ``null`` otherwise, and then the
  item keeps ``geocodes`` (``SAME``, ``UGC``) plus ``affectedZones`` (in ``raw``) so that
  :func:`resolve_geometry` can union the county/zone shapes later.
* ``messageType`` Alert/Update/Cancel; ``references`` are the ``identifier``s replaced.
  An NWS update carries a *new* identifier and references the old one.
* Times carry offsets (``-05:00``, ``-00:00``); the weather.gov "templated" captures
  (``"date:now -5 minutes"``) are unreadable until :func:`feeds.relative_dates.rewrite_relative_dates`
  has run: such fields become None and the item gets an :class:`ItemError` naming them.
* Old ids (``NWS-IDP-PROD-…``), modern ``urn:oid:…`` ids and extra keys (``@saved``) are fine.
* Non-``Actual`` messages (Test, Exercise, System, Draft) are skipped with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from feeds.boundaries import same_to_fips, ugc_to_fips
from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Status, normalize_severity
from feeds.shapes import representative_point, union_geojson
from feeds.times import TimeFormatError, parse_iso

SOURCE = "nws"
_RAW_KEYS = ("event", "messageType", "status", "category", "urgency", "certainty", "response", "senderName",
             "areaDesc", "affectedZones")  # fmt: skip
_TIME_KEYS = ("sent", "effective", "onset", "expires", "ends")


def _times(props: Mapping[str, Any]) -> tuple[dict[str, datetime | None], list[str]]:
    out: dict[str, datetime | None] = {}
    bad: list[str] = []
    for key in _TIME_KEYS:
        value = props.get(key)
        try:
            out[key] = parse_iso(value) if isinstance(value, str) or value is None else None
        except TimeFormatError:
            out[key] = None
            bad.append(f"{key}={value!r}")
    return out, bad


def _references(value: Any) -> list[str]:
    refs: list[str] = []
    for ref in value or []:
        if isinstance(ref, Mapping):
            ident = ref.get("identifier") or str(ref.get("@id", "")).rsplit("/", 1)[-1]
            if ident:
                refs.append(str(ident))
        elif isinstance(ref, str) and ref:
            refs.append(ref.rsplit("/", 1)[-1])
    return refs


def _geometry(geom: Any) -> dict[str, Any] | None:
    if not isinstance(geom, Mapping) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        return None
    return union_geojson([dict(geom)])


def parse_feature(feature: Mapping[str, Any], now: datetime) -> tuple[HazardItem | None, ItemError | None]:
    """One alert Feature → (item or None, error or None). Never raises on bad data."""
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        return None, ItemError(None, "feature without properties")
    ext_id = props.get("id") or str(feature.get("id") or "").rsplit("/", 1)[-1]
    if not ext_id:
        return None, ItemError(None, "alert without id")
    ext_id = str(ext_id)
    cap_status = str(props.get("status") or "Actual")
    if cap_status.lower() != "actual":
        return None, ItemError(ext_id, f"status {cap_status!r} is not Actual; skipped")
    times, bad_times = _times(props)
    error = None
    if bad_times:
        error = ItemError(ext_id, "unreadable times (kept as unknown): " + ", ".join(bad_times))
    geometry = None
    raw_geom = feature.get("geometry")
    if raw_geom is not None:
        try:
            geometry = _geometry(raw_geom)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return None, ItemError(ext_id, f"bad geometry: {exc}")
        if geometry is None:
            return None, ItemError(ext_id, f"unsupported geometry {str(raw_geom)[:60]!r}")
    geocode = props.get("geocode")
    if not isinstance(geocode, Mapping):
        geocode = {}
    geocodes = {str(k): [str(v) for v in vals] for k, vals in geocode.items() if isinstance(vals, list)}
    if geometry is None and not geocodes and not props.get("affectedZones"):
        return None, ItemError(ext_id, "no geometry, geocodes or affectedZones")
    msg_type = str(props.get("messageType") or "Alert")
    valid_until = times["ends"] or times["expires"]
    status: Status = "active"
    if msg_type.lower() == "cancel":
        status = "cancelled"
    elif valid_until is not None and valid_until <= now:
        status = "expired"
    sent_raw = props.get("sent")
    version = times["sent"].isoformat() if times["sent"] else str(sent_raw or "")
    raw = {k: props[k] for k in _RAW_KEYS if k in props}
    params = props.get("parameters")
    if isinstance(params, Mapping):
        raw["parameters"] = {k: params[k] for k in ("VTEC", "NWSheadline", "eventEndingTime") if k in params}
    item = HazardItem(
        source=SOURCE,
        external_id=ext_id,
        version=version,
        kind=str(props.get("event") or "Unknown"),
        severity=normalize_severity(props.get("severity")),
        title=str(props.get("headline") or props.get("event") or ""),
        description=str(props.get("description") or ""),
        geometry=geometry,
        geocodes=geocodes,
        point=representative_point(geometry) if geometry else None,
        valid_from=times["onset"] or times["effective"] or times["sent"],
        valid_until=valid_until,
        status=status,
        references=_references(props.get("references")),
        raw=raw,
        url=str(feature.get("id") or props.get("@id") or "") or None,
    )
    return item, error


def parse(data: bytes, options: Mapping[str, Any] | None = None, now: datetime | None = None) -> ParseResult:
    """Parse an NWS alerts GeoJSON document. Raises :class:`FeedFormatError` only if unreadable."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise FeedFormatError(f"NWS alerts: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise FeedFormatError("NWS alerts: not a FeatureCollection with features")
    current = now or datetime.now(UTC)
    result = ParseResult()
    for feature in doc["features"]:
        if not isinstance(feature, Mapping):
            result.errors.append(ItemError(None, "feature is not an object"))
            continue
        item, error = parse_feature(feature, current)
        if item is not None:
            result.items.append(item)
        if error is not None:
            result.errors.append(error)
    return result


class ZoneResolver(Protocol):
    """Looks up the shape of an NWS zone/county code (``IAZ052``, ``IAC113``, ``019113``)."""

    async def geometry_for(self, ugc_or_same: str) -> dict[str, Any] | None: ...


def _codes(item: HazardItem) -> Iterable[str]:
    ugcs = item.geocodes.get("UGC", [])
    if ugcs:
        yield from ugcs
    else:
        yield from item.geocodes.get("SAME", [])


async def resolve_geometry(item: HazardItem, resolver: ZoneResolver) -> tuple[HazardItem, list[str]]:
    """Union the shapes of the item's UGC codes (SAME when there is no UGC).

    Returns the item with ``geometry`` (and ``point``) set, and the codes that could not be
    resolved. County UGCs the resolver does not know are retried as 5-digit FIPS. An item that
    already has a geometry is returned unchanged.
    """
    if item.geometry is not None:
        return item, []
    shapes: list[dict[str, Any]] = []
    missing: list[str] = []
    for code in dict.fromkeys(_codes(item)):
        geom = await resolver.geometry_for(code)
        if geom is None:
            fips = ugc_to_fips(code) or same_to_fips(code)
            if fips is not None and fips != code:
                geom = await resolver.geometry_for(fips)
        if geom is None:
            missing.append(code)
        else:
            shapes.append(geom)
    merged = union_geojson(shapes) if shapes else None
    if merged is None:
        return item, missing
    return msgspec.structs.replace(item, geometry=merged, point=representative_point(merged)), missing
