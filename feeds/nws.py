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

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from feeds.boundaries import same_to_fips, ugc_to_fips
from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Status, normalize_severity
from feeds.shapes import representative_point, union_geojson
from feeds.times import TimeFormatError, parse_iso

SOURCE = "nws"
log = logging.getLogger("sitrep.feeds.nws")
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
    """Looks up the shape of an NWS zone/county code (``IAZ052``, ``IAC113``, ``019113``).

    A resolver may also offer ``async prefetch(codes)`` (fetch the shapes it lacks, all at once,
    before a document is resolved) and ``async area_for(codes) -> (geometry | None, missing)``
    (the union of several codes, which it may cache); :func:`resolve_items` uses them when present.
    """

    async def geometry_for(self, ugc_or_same: str) -> dict[str, Any] | None: ...


def _codes(item: HazardItem) -> Iterable[str]:
    ugcs = item.geocodes.get("UGC", [])
    if ugcs:
        yield from ugcs
    else:
        yield from item.geocodes.get("SAME", [])


async def _shape_of(code: str, resolver: ZoneResolver) -> dict[str, Any] | None:
    geom = await resolver.geometry_for(code)
    if geom is None:
        fips = ugc_to_fips(code) or same_to_fips(code)
        if fips is not None and fips != code:
            geom = await resolver.geometry_for(fips)
    return geom


async def area_for(codes: Sequence[str], resolver: ZoneResolver) -> tuple[dict[str, Any] | None, list[str]]:
    """The union of the shapes of ``codes`` (GeoJSON, or None) and the codes that have no shape.

    County UGCs the resolver does not know are retried as 5-digit FIPS. Uses the resolver's own
    ``area_for`` when it has one.
    """
    own = getattr(resolver, "area_for", None)
    if own is not None:
        merged, absent = await own(codes)
        return merged, list(absent)
    shapes: list[dict[str, Any]] = []
    missing: list[str] = []
    for code in codes:
        geom = await _shape_of(code, resolver)
        if geom is None:
            missing.append(code)
        else:
            shapes.append(geom)
    return (union_geojson(shapes) if shapes else None), missing


async def resolve_geometry(item: HazardItem, resolver: ZoneResolver) -> tuple[HazardItem, list[str]]:
    """Union the shapes of the item's UGC codes (SAME when there is no UGC).

    Returns the item with ``geometry`` (and ``point``) set, and the codes that could not be
    resolved. County UGCs the resolver does not know are retried as 5-digit FIPS. An item that
    already has a geometry is returned unchanged.
    """
    if item.geometry is not None:
        return item, []
    merged, missing = await area_for(list(dict.fromkeys(_codes(item))), resolver)
    if merged is None:
        return item, missing
    return msgspec.structs.replace(item, geometry=merged, point=representative_point(merged)), missing


async def resolve_items(items: list[HazardItem], resolver: ZoneResolver) -> list[ItemError]:
    """Resolve every item without a geometry (in place), one union per distinct code set.

    Alerts of one document often name the same zones (the 510 zone-based alerts of the national
    capture have 296 distinct code sets): each set is unioned once and shared. Unknown shapes are
    asked for all at once first (``prefetch``) when the resolver can. Returns an item error for
    each item left without an area, naming the codes that had no shape.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for n, item in enumerate(items):
        if item.geometry is None and item.geocodes:
            groups.setdefault(tuple(dict.fromkeys(_codes(item))), []).append(n)
    if not groups:
        return []
    prefetch = getattr(resolver, "prefetch", None)
    if prefetch is not None:
        try:
            await prefetch(list(dict.fromkeys(c for codes in groups for c in codes)))
        except Exception as exc:  # what it could not fetch is asked for again per code set below
            log.warning("zone prefetch failed: %s", exc)
    errors: list[ItemError] = []
    for codes, indexes in groups.items():
        try:
            merged, missing = await area_for(codes, resolver)
        except Exception as exc:  # a resolver failure costs these items, not the document
            errors.extend(ItemError(items[n].external_id, f"zone lookup failed: {exc}") for n in indexes)
            continue
        point = representative_point(merged) if merged is not None else None
        for n in indexes:
            if merged is not None:
                items[n] = msgspec.structs.replace(items[n], geometry=merged, point=point)
            elif missing:
                errors.append(ItemError(items[n].external_id, f"no shape for {', '.join(missing[:5])}"))
    return errors
