"""Atom and RSS 2.0 indexes of CAP alerts.

What real indexes look like, and what each gives:

* NWS/NY Alert style: entries (items) that only *link* to the full CAP → :class:`FollowLink`.
  NWS Atom entries also carry ``cap:`` summary fields (event, severity, expires, FIPS6/UGC
  geocodes) → a provisional hazard with ``geometry=None`` and the geocodes.
* MeteoAlarm: entries with ``cap:`` fields, an ``EMMA_ID`` geocode (no geometry), the
  non-standard ``cap:message_type`` (read like ``cap:msgType``) and a
  ``type="application/cap+xml"`` link → a provisional hazard plus a follow link.
* An entry embedding a whole ``<alert>`` → parsed as a CAP alert (schema-checked).
* A feed with no entries but an ``<alert>`` directly under ``<feed>`` (foreign markup) → the
  alert is read too.

The scheduler fetches follow links; a full alert then replaces the provisional item with the
same identifier.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from feeds.cap import SOURCE, alert_element_result, polygon_geojson
from feeds.model import FollowLink, HazardItem, ItemError, ParseResult, Status, normalize_severity
from feeds.shapes import representative_point, union_geojson
from feeds.times import TimeFormatError, parse_any
from feeds.xmlsafe import child, children, local, text

CAP_MIME = "application/cap+xml"


def _cap_link(entry: etree._Element, cap_index: bool) -> str | None:
    links = children(entry, "link")
    for link in links:
        if CAP_MIME in (link.get("type") or ""):
            return link.get("href") or (link.text or "").strip() or None
    if cap_index:
        for link in links:
            href = link.get("href") or (link.text or "").strip()
            if href and (link.get("rel") or "alternate") == "alternate":
                return href
    return None


def _has_cap_fields(entry: etree._Element) -> bool:
    return any(isinstance(c.tag, str) and c.tag.startswith("{urn:oasis:names:tc:emergency:cap") for c in entry)


def _entry_item(entry: etree._Element, entry_id: str, now: datetime, url: str | None) -> HazardItem:
    """A provisional hazard from an index entry's ``cap:`` fields."""
    geocodes: dict[str, list[str]] = {}
    for gc in children(entry, "geocode"):
        name = text(gc, "valueName") or ""
        geocodes.setdefault(name, []).extend((text(gc, "value") or "").split())
    shapes = [g for p in children(entry, "polygon") if p.text for g in [polygon_geojson(p.text)] if g]
    geometry = union_geojson(shapes) if shapes else None

    def when(name: str) -> datetime | None:
        try:
            return parse_any(text(entry, name))
        except TimeFormatError:
            return None

    msg_type = text(entry, "msgType") or text(entry, "message_type") or "Alert"
    expires = when("expires")
    sent = when("sent") or when("effective") or when("updated") or when("published")
    status: Status = "active"
    if msg_type.lower() == "cancel":
        status = "cancelled"
    elif expires is not None and expires <= now:
        status = "expired"
    return HazardItem(
        source=SOURCE,
        external_id=text(entry, "identifier") or entry_id,
        version=sent.isoformat() if sent else (text(entry, "updated") or ""),
        kind=text(entry, "event") or text(entry, "title") or "CAP alert",
        severity=normalize_severity(text(entry, "severity")),
        title=text(entry, "title") or "",
        description=text(entry, "summary") or "",
        geometry=geometry,
        geocodes=geocodes,
        point=representative_point(geometry) if geometry else None,
        valid_from=when("onset") or when("effective") or sent,
        valid_until=expires,
        status=status,
        raw={
            "msgType": msg_type,
            "areaDesc": text(entry, "areaDesc"),
            "provisional": True,
            "urgency": text(entry, "urgency"),
            "certainty": text(entry, "certainty"),
        },
        url=url,
    )


def parse_index(root: etree._Element, now: datetime) -> ParseResult:
    """Parse an Atom ``<feed>`` or RSS ``<rss>`` index root."""
    result = ParseResult()
    if local(root.tag) == "rss":
        channel = child(root, "channel")
        entries = children(channel, "item") if channel is not None else []
    else:
        entries = children(root, "entry")
        for foreign in children(root, "alert"):
            alert_element_result(foreign, now, None, result)
    cap_index = any(_has_cap_fields(e) for e in entries) or local(root.tag) == "rss"
    for entry in entries:
        entry_id = text(entry, "id") or text(entry, "guid") or text(entry, "identifier")
        embedded = [c for c in entry.iter() if isinstance(c.tag, str) and local(c.tag) == "alert"]
        link = _cap_link(entry, cap_index)
        if embedded:
            for el in embedded:
                alert_element_result(el, now, link, result)
            continue
        if _has_cap_fields(entry):
            result.items.append(_entry_item(entry, entry_id or link or "", now, link))
        if link:
            result.follow.append(
                FollowLink(
                    url=link,
                    external_id=text(entry, "identifier") or entry_id,
                    updated=text(entry, "updated"),
                )
            )
        elif not _has_cap_fields(entry):
            result.errors.append(ItemError(entry_id, "index entry without CAP fields or a CAP link"))
    return result
