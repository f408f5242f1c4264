"""CAP 1.2 out: the writer, the rules the XSD does not check, and the Atom index.

The writer emits elements in schema order, times as ``YYYY-MM-DDThh:mm:ss-00:00`` (CAP forbids
``Z``; UTC is written ``-00:00``), polygons as closed ``lat,lon`` rings, and ``references`` as
``sender,identifier,sent`` triples. :func:`check_rules` re-checks every one of those on any document
(see ../shared/PROTOCOLS.md), and the feeds' parser reads our output back (tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from .model import EXERCISE_PREFIX, is_exercise

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_MEDIA_TYPE = "application/atom+xml"

ALERT_ORDER = ("identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction",
               "addresses", "code", "note", "references", "incidents", "info")  # fmt: skip
INFO_ORDER = ("language", "category", "event", "responseType", "urgency", "severity", "certainty",
              "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
              "description", "instruction", "web", "contact", "parameter", "resource", "area")  # fmt: skip
AREA_ORDER = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
_PAIR = re.compile(r"^(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$")


def cap_time(value: datetime) -> str:
    """CAP time: second precision, numeric offset; UTC is ``-00:00`` (``Z`` is not allowed)."""
    utc = value.astimezone(UTC).replace(microsecond=0)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def polygon_texts(geom: BaseGeometry) -> list[str]:
    """One CAP ``<polygon>`` per part: ``lat,lon`` pairs, closed (first == last)."""
    parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    out = []
    for part in parts:
        if not isinstance(part, Polygon) or part.is_empty:
            continue
        coords = list(part.exterior.coords)
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        out.append(" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in coords))
    return out


def _sub(parent: etree._Element, name: str, value: str | None) -> etree._Element | None:
    if value is None or value == "":
        return None
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{name}")
    el.text = value
    return el


def build_cap(
    *,
    identifier: str,
    sender: str,
    sent: datetime,
    cap_status: str,
    msg_type: str,
    content: dict[str, Any],
    area: BaseGeometry | None,
    area_desc: str,
    references: Iterable[str] = (),
    ipaws: bool = False,
) -> bytes:
    """The CAP 1.2 document of one alert version (``content`` as stored in ``alerts.content``)."""
    nsmap = {None: CAP_NS}
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap=nsmap)
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", cap_status)
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    if ipaws:
        _sub(root, "code", "IPAWSv1.0")
    note = content.get("note")
    if is_exercise(cap_status):
        note = f"{cap_status.upper()}: not a real alert. " + (note or "")
    _sub(root, "note", note.strip() if note else None)
    refs = " ".join(references)
    _sub(root, "references", refs or None)
    exercise = is_exercise(cap_status)
    for text in content["texts"]:
        info = etree.SubElement(root, f"{{{CAP_NS}}}info")
        _sub(info, "language", text["language"])
        for c in content["category"]:
            _sub(info, "category", c)
        _sub(info, "event", content["event"])
        for r in content["response_type"]:
            _sub(info, "responseType", r)
        _sub(info, "urgency", content["urgency"])
        _sub(info, "severity", content["severity"])
        _sub(info, "certainty", content["certainty"])
        if content.get("same_event_code"):
            code = etree.SubElement(info, f"{{{CAP_NS}}}eventCode")
            _sub(code, "valueName", "SAME")
            _sub(code, "value", content["same_event_code"])
        for name in ("effective", "onset", "expires"):
            value = content.get(name)
            if value:
                _sub(info, name, cap_time(_as_dt(value)))
        _sub(info, "senderName", content.get("sender_name"))
        headline = (EXERCISE_PREFIX if exercise else "") + text["headline"]
        _sub(info, "headline", headline)
        _sub(info, "description", text["description"])
        _sub(info, "instruction", text.get("instruction"))
        _sub(info, "web", content.get("web"))
        _sub(info, "contact", content.get("contact"))
        if area is not None:
            area_el = etree.SubElement(info, f"{{{CAP_NS}}}area")
            _sub(area_el, "areaDesc", area_desc or "Alert area")
            for poly in polygon_texts(area):
                _sub(area_el, "polygon", poly)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _check_order(el: etree._Element, order: tuple[str, ...], where: str, problems: list[str]) -> None:
    last = -1
    for child in el:
        name = _local(child.tag)
        if name not in order:
            continue
        pos = order.index(name)
        if pos < last:
            problems.append(f"{where}: <{name}> out of order")
        last = max(last, pos)


def check_rules(xml: bytes) -> list[str]:
    """The CAP rules the XSD does not check (PROTOCOLS.md). Empty when the document follows them."""
    problems: list[str] = []
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser=parser)
    ns = {"c": CAP_NS}
    _check_order(root, ALERT_ORDER, "alert", problems)
    for name in ("sent", "info/c:effective", "info/c:onset", "info/c:expires"):
        for el in root.iterfind(f"c:{name}", ns):
            if not _TIME.match(el.text or ""):
                problems.append(f"<{_local(el.tag)}> {el.text!r} is not YYYY-MM-DDThh:mm:ss±hh:mm")
    refs = root.findtext("c:references", namespaces=ns)
    if refs is not None:
        for triple in refs.split():
            parts = triple.split(",")
            if len(parts) != 3 or not all(parts) or not _TIME.match(parts[2]):
                problems.append(f"reference {triple!r} is not sender,identifier,sent")
    for i, info in enumerate(root.iterfind("c:info", ns)):
        _check_order(info, INFO_ORDER, f"info[{i}]", problems)
        eff = info.findtext("c:effective", namespaces=ns) or root.findtext("c:sent", namespaces=ns)
        exp = info.findtext("c:expires", namespaces=ns)
        if eff and exp and _TIME.match(eff) and _TIME.match(exp):
            if datetime.fromisoformat(eff) > datetime.fromisoformat(exp):
                problems.append(f"info[{i}]: effective {eff} after expires {exp}")
        for area in info.iterfind("c:area", ns):
            _check_order(area, AREA_ORDER, f"info[{i}].area", problems)
            for poly in area.iterfind("c:polygon", ns):
                problems.extend(_polygon_problems(poly.text or ""))
    return problems


def _polygon_problems(value: str) -> list[str]:
    pairs = value.split()
    out = []
    if len(pairs) < 4:
        out.append(f"polygon has {len(pairs)} pairs (at least 4)")
    parsed = []
    for p in pairs:
        m = _PAIR.match(p)
        if not m:
            out.append(f"polygon pair {p!r} is not lat,lon")
            continue
        lat, lon = float(m.group(1)), float(m.group(2))
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            out.append(f"polygon pair {p!r} out of range (lat first)")
        parsed.append((lat, lon))
    if parsed and parsed[0] != parsed[-1]:
        out.append("polygon is not closed (first pair != last pair)")
    return out


def build_atom(entries: list[dict[str, Any]], *, base_url: str, updated: datetime) -> bytes:
    """An Atom index of alerts; each entry links to its CAP document (``rel=alternate``)."""
    root = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})

    def sub(parent: etree._Element, name: str, value: str | None = None, **attrs: str) -> etree._Element:
        el = etree.SubElement(parent, f"{{{ATOM_NS}}}{name}", attrs)
        if value is not None:
            el.text = value
        return el

    sub(root, "id", f"{base_url}/v1/alerts.atom")
    sub(root, "title", "sitrep public alerts")
    sub(root, "updated", updated.astimezone(UTC).replace(microsecond=0).isoformat())
    sub(root, "link", rel="self", href=f"{base_url}/v1/alerts.atom", type=ATOM_MEDIA_TYPE)
    author = sub(root, "author")
    sub(author, "name", "sitrep")
    for e in entries:
        entry = sub(root, "entry")
        sub(entry, "id", f"urn:cap:{e['identifier']}")
        sub(entry, "title", e["title"])
        sub(entry, "updated", e["updated"].astimezone(UTC).replace(microsecond=0).isoformat())
        sub(entry, "link", rel="alternate", href=f"{base_url}/v1/alerts/{e['id']}.cap", type=CAP_MEDIA_TYPE)
        sub(entry, "summary", e["summary"])
        sub(entry, "category", term=e["cap_status"])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
