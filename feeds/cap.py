"""CAP 1.1/1.2 alerts → :class:`CapAlert` (a faithful read) and → hazards.

* Namespaces: default or prefixed (``cap:alert``); CAP 1.1 and 1.2. Encodings as declared
  (ISO-8859-1 works). Hostile XML is refused by :mod:`feeds.xmlsafe` before parsing.
* Several ``<info>`` blocks (languages): the hazard uses the first English one (else the
  first), and lists the other languages in ``raw``. Several ``<area>``, ``<polygon>`` and
  ``<circle>`` elements are unioned. Polygons are ``lat,lon`` pairs (converted to lon, lat);
  circles are ``lat,lon radius_km`` and become geodesic buffers; a zero radius gets
  :data:`feeds.shapes.MIN_RADIUS_M` and a note in ``raw["notes"]``. Geocodes are kept.
* ``msgType`` Alert/Update/Cancel; ``references`` are ``sender,identifier,sent`` triples, and
  the hazard's ``references`` are their identifiers. Ack/Error messages are not hazards.
* Schema-invalid alerts (checked against :mod:`feeds.capschema`) are recorded as item errors.

Index feeds (Atom, RSS) are handled in :mod:`feeds.capindex`; :func:`parse` dispatches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from lxml import etree

from feeds.capschema import CAP_NAMESPACES, validate_cap
from feeds.model import FeedFormatError, HazardItem, ItemError, ParseResult, Status, normalize_severity
from feeds.shapes import MIN_RADIUS_M, geodesic_circle, polygon_from_ring, representative_point, union_geojson
from feeds.times import TimeFormatError, parse_iso
from feeds.xmlsafe import children, local, parse_xml, text

SOURCE = "cap"
_PAIR = re.compile(r"(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)")


class CapReference(msgspec.Struct):
    sender: str
    identifier: str
    sent: str


class CapValue(msgspec.Struct):
    value_name: str
    value: str


class CapArea(msgspec.Struct, rename="camel"):
    area_desc: str
    polygons: list[str] = msgspec.field(default_factory=list)
    circles: list[str] = msgspec.field(default_factory=list)
    geocodes: list[CapValue] = msgspec.field(default_factory=list)
    altitude: str | None = None
    ceiling: str | None = None


class CapInfo(msgspec.Struct, rename="camel"):
    language: str = "en-US"
    categories: list[str] = msgspec.field(default_factory=list)
    event: str = ""
    response_types: list[str] = msgspec.field(default_factory=list)
    urgency: str = "Unknown"
    severity: str = "Unknown"
    certainty: str = "Unknown"
    audience: str | None = None
    event_codes: list[CapValue] = msgspec.field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[CapValue] = msgspec.field(default_factory=list)
    areas: list[CapArea] = msgspec.field(default_factory=list)


class CapAlert(msgspec.Struct, rename="camel"):
    """The content of one CAP alert. Times are aware UTC; text is stripped."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    version: str = "1.2"
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = msgspec.field(default_factory=list)
    note: str | None = None
    references: list[CapReference] = msgspec.field(default_factory=list)
    incidents: str | None = None
    infos: list[CapInfo] = msgspec.field(default_factory=list)

    @property
    def areas(self) -> list[CapArea]:
        """Every area of every info block, in document order."""
        return [a for info in self.infos for a in info.areas]


def _pairs(el: etree._Element, name: str) -> list[CapValue]:
    out = []
    for c in children(el, name):
        out.append(CapValue(text(c, "valueName") or "", text(c, "value") or ""))
    return out


def _texts(el: etree._Element, name: str) -> list[str]:
    return [c.text.strip() for c in children(el, name) if c.text and c.text.strip()]


def _time(el: etree._Element, name: str) -> datetime | None:
    try:
        return parse_iso(text(el, name))
    except TimeFormatError as exc:
        raise FeedFormatError(f"<{name}>: {exc}") from exc


def parse_references(value: str | None) -> list[CapReference]:
    """``sender,identifier,sent`` triples separated by whitespace."""
    refs = []
    for triple in (value or "").split():
        parts = triple.split(",")
        if len(parts) >= 3:
            refs.append(CapReference(parts[0], ",".join(parts[1:-1]), parts[-1]))
        elif len(parts) == 2:
            refs.append(CapReference(parts[0], parts[1], ""))
    return refs


def alert_from_element(root: etree._Element) -> CapAlert:
    """Read an ``<alert>`` element (no schema check). Raises :class:`FeedFormatError`."""
    if local(root.tag) != "alert":
        raise FeedFormatError(f"not a CAP alert: <{local(root.tag)}>")
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    identifier, sender = text(root, "identifier"), text(root, "sender")
    sent = _time(root, "sent")
    if not identifier or not sender or sent is None:
        raise FeedFormatError("CAP alert lacks identifier, sender or sent")
    infos = []
    for info_el in children(root, "info"):
        areas = [
            CapArea(
                area_desc=text(a, "areaDesc") or "",
                polygons=_texts(a, "polygon"),
                circles=_texts(a, "circle"),
                geocodes=_pairs(a, "geocode"),
                altitude=text(a, "altitude"),
                ceiling=text(a, "ceiling"),
            )
            for a in children(info_el, "area")
        ]
        infos.append(
            CapInfo(
                language=text(info_el, "language") or "en-US",
                categories=_texts(info_el, "category"),
                event=text(info_el, "event") or "",
                response_types=_texts(info_el, "responseType"),
                urgency=text(info_el, "urgency") or "Unknown",
                severity=text(info_el, "severity") or "Unknown",
                certainty=text(info_el, "certainty") or "Unknown",
                audience=text(info_el, "audience"),
                event_codes=_pairs(info_el, "eventCode"),
                effective=_time(info_el, "effective"),
                onset=_time(info_el, "onset"),
                expires=_time(info_el, "expires"),
                sender_name=text(info_el, "senderName"),
                headline=text(info_el, "headline"),
                description=text(info_el, "description"),
                instruction=text(info_el, "instruction"),
                web=text(info_el, "web"),
                contact=text(info_el, "contact"),
                parameters=_pairs(info_el, "parameter"),
                areas=areas,
            )
        )
    return CapAlert(
        identifier=identifier,
        sender=sender,
        sent=sent,
        status=text(root, "status") or "",
        msg_type=text(root, "msgType") or "",
        scope=text(root, "scope") or "",
        version=CAP_NAMESPACES.get(namespace, "?").removeprefix("cap-").removesuffix(".xsd"),
        source=text(root, "source"),
        restriction=text(root, "restriction"),
        addresses=text(root, "addresses"),
        codes=_texts(root, "code"),
        note=text(root, "note"),
        references=parse_references(text(root, "references")),
        incidents=text(root, "incidents"),
        infos=infos,
    )


def parse_cap_alert(data: bytes, *, validate: bool = True) -> CapAlert:
    """Parse one standalone CAP document into :class:`CapAlert`.

    Raises :class:`FeedFormatError` (or its subclass ``UnsafeXMLError``) when the document is
    hostile, malformed, not an alert, or (with ``validate``) schema-invalid.
    """
    root = parse_xml(data)
    if validate:
        problems = validate_cap(root)
        if problems:
            raise FeedFormatError("schema-invalid CAP: " + "; ".join(problems[:3]))
    return alert_from_element(root)


def polygon_geojson(value: str) -> dict[str, Any] | None:
    """``"lat,lon lat,lon …"`` → GeoJSON polygon in lon, lat; None if fewer than 4 pairs."""
    ring = [(float(lon), float(lat)) for lat, lon in _PAIR.findall(value)]
    if len(ring) < 4:
        return None
    return polygon_from_ring(ring)


def circle_geojson(value: str) -> tuple[dict[str, Any] | None, str | None]:
    """``"lat,lon radius_km"`` → (geodesic circle, note). A zero radius gets the minimum."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s*", value)
    if not m:
        return None, f"unreadable circle {value!r}"
    lat, lon, radius_km = float(m.group(1)), float(m.group(2)), float(m.group(3))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, f"circle centre out of range {value!r}"
    note = None
    if radius_km * 1000.0 < MIN_RADIUS_M:
        note = f"circle {value!r} has radius {radius_km} km; using the minimum {MIN_RADIUS_M:.0f} m"
    return geodesic_circle(lon, lat, radius_km * 1000.0), note


def _pick_info(alert: CapAlert) -> CapInfo | None:
    for info in alert.infos:
        if info.language.lower().startswith("en"):
            return info
    return alert.infos[0] if alert.infos else None


def alert_to_item(alert: CapAlert, now: datetime, url: str | None = None) -> tuple[HazardItem | None, str | None]:
    """CapAlert → (hazard, None) or (None, reason it is not a hazard)."""
    if alert.status.lower() != "actual":
        return None, f"status {alert.status!r} is not Actual; skipped"
    if alert.msg_type.lower() not in ("alert", "update", "cancel"):
        return None, f"msgType {alert.msg_type!r} is not a hazard"
    info = _pick_info(alert)
    notes: list[str] = []
    shapes: list[dict[str, Any]] = []
    geocodes: dict[str, list[str]] = {}
    for area in info.areas if info else []:
        for poly in area.polygons:
            geom = polygon_geojson(poly)
            if geom is None:
                notes.append(f"polygon with fewer than 4 points ignored: {poly[:60]!r}")
            else:
                shapes.append(geom)
        for circle in area.circles:
            geom, note = circle_geojson(circle)
            if note:
                notes.append(note)
            if geom is not None:
                shapes.append(geom)
        for gc in area.geocodes:
            geocodes.setdefault(gc.value_name, []).extend(gc.value.split())
    geometry = union_geojson(shapes) if shapes else None
    valid_until = info.expires if info else None
    status: Status = "active"
    if alert.msg_type.lower() == "cancel":
        status = "cancelled"
    elif valid_until is not None and valid_until <= now:
        status = "expired"
    raw: dict[str, Any] = {
        "sender": alert.sender,
        "msgType": alert.msg_type,
        "capVersion": alert.version,
        "languages": [i.language for i in alert.infos],
        "areaDesc": "; ".join(a.area_desc for a in info.areas) if info else "",
    }
    if info:
        raw.update(urgency=info.urgency, certainty=info.certainty, categories=info.categories,
                   senderName=info.sender_name, responseTypes=info.response_types)  # fmt: skip
    if notes:
        raw["notes"] = notes
    item = HazardItem(
        source=SOURCE,
        external_id=alert.identifier,
        version=alert.sent.isoformat(),
        kind=info.event if info and info.event else "CAP alert",
        severity=normalize_severity(info.severity if info else None),
        title=(info.headline or info.event) if info else alert.identifier,
        description=(info.description or "") if info else "",
        geometry=geometry,
        geocodes=geocodes,
        point=representative_point(geometry) if geometry else None,
        valid_from=(info.onset or info.effective or alert.sent) if info else alert.sent,
        valid_until=valid_until,
        status=status,
        references=[r.identifier for r in alert.references],
        raw=raw,
        url=url or (info.web if info else None),
    )
    return item, None


def alert_element_result(el: etree._Element, now: datetime, url: str | None, result: ParseResult) -> None:
    """Validate and convert one ``<alert>`` element, appending to ``result``."""
    ident = text(el, "identifier")
    problems = validate_cap(el)
    if problems:
        result.errors.append(ItemError(ident, "schema-invalid CAP, skipped: " + "; ".join(problems[:3])))
        return
    try:
        alert = alert_from_element(el)
    except FeedFormatError as exc:
        result.errors.append(ItemError(ident, str(exc)))
        return
    item, reason = alert_to_item(alert, now, url)
    if item is None:
        result.errors.append(ItemError(ident, reason or "not a hazard"))
    else:
        result.items.append(item)


def parse(data: bytes, options: Mapping[str, Any] | None = None, now: datetime | None = None) -> ParseResult:
    """A CAP alert, or an Atom/RSS index of CAP alerts → ParseResult.

    Hostile or malformed XML raises :class:`FeedFormatError`; a schema-invalid alert is an
    item error. Index entries that link to full CAP documents are returned in ``follow``.
    """
    from feeds import capindex

    root = parse_xml(data)
    current = now or datetime.now(UTC)
    if local(root.tag) == "alert":
        result = ParseResult()
        alert_element_result(root, current, (options or {}).get("url"), result)
        return result
    if local(root.tag) in ("feed", "rss"):
        return capindex.parse_index(root, current)
    raise FeedFormatError(f"not CAP, Atom or RSS: <{local(root.tag)}>")


__all__ = ["CapAlert", "CapArea", "CapInfo", "CapReference", "CapValue", "parse", "parse_cap_alert"]
