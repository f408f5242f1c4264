"""CAP 1.2 out, without a server: XSD + extra rules + read back by the feeds' parser; area covering."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
import shapely
from lxml import etree
from shapely.geometry import Point, shape

from feeds.cap import parse_cap_alert, polygon_geojson
from server.alerts.area import cover_area
from server.alerts.cap import build_atom, build_cap, cap_time, check_rules
from server.alerts.model import EXERCISE_PREFIX, check_content, sms_text
from server.errors import InvalidInput
from tests.conftest import samples_dir


@cache
def _shared_xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(samples_dir() / "schemas" / "CAP-v1.2.xsd")))


def assert_valid_cap(xml: bytes) -> None:
    """Every CAP document we produce: the OASIS XSD from ../shared, the extra rules, and the parser."""
    schema = _shared_xsd()
    doc = etree.fromstring(xml)
    assert schema.validate(doc), [str(e) for e in schema.error_log]
    assert check_rules(xml) == []
    parse_cap_alert(xml)  # also validates against the feeds' own XSD


def _content(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "status": "Actual",
        "event": "Flash Flood",
        "category": ["Met", "Safety"],
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Observed",
        "response_type": ["Evacuate", "Monitor"],
        "effective": "2026-05-01T12:00:00.123456+00:00",
        "onset": None,
        "expires": "2026-05-01T18:00:00Z",
        "texts": [
            {
                "language": "en-US",
                "headline": "Flood",
                "description": "Rising water & <debris>.",
                "instruction": "Leave now.",
                "sms_90": "Flood: leave now",
                "sms_360": "",
            },
            {
                "language": "es-US",
                "headline": "Inundación",
                "description": "Agua que sube.",
                "instruction": "Salga ya.",
                "sms_90": "",
                "sms_360": "",
            },
        ],
        "same_event_code": "FFW",
        "web": "https://example.org/alerts",
        "contact": "EOC +1 319 555 0100",
        "note": None,
        "area_desc": "Downtown Cedar Rapids",
    }
    c.update(over)
    return c


AREA = shapely.Polygon([(-91.7, 41.95), (-91.6, 41.95), (-91.6, 42.02), (-91.7, 42.02)])


def test_cap_document_is_valid_and_reads_back_the_same() -> None:
    sent = datetime(2026, 5, 1, 12, 0, 5, 999, tzinfo=UTC)
    refs = ["sitrep@example.org,example.org.abc,2026-05-01T11:00:00-00:00"]
    xml = build_cap(identifier="example.org.def", sender="sitrep@example.org", sent=sent, cap_status="Actual",
                    msg_type="Update", content=_content(), area=AREA, area_desc="Downtown", references=refs)  # fmt: skip
    assert_valid_cap(xml)
    text = xml.decode()
    assert "Z<" not in text and ".123" not in text
    assert "<sent>2026-05-01T12:00:05-00:00</sent>" in text
    alert = parse_cap_alert(xml)
    assert alert.identifier == "example.org.def" and alert.msg_type == "Update" and alert.status == "Actual"
    assert alert.sent == sent.replace(microsecond=0)
    assert [(r.sender, r.identifier) for r in alert.references] == [("sitrep@example.org", "example.org.abc")]
    assert [i.language for i in alert.infos] == ["en-US", "es-US"]
    en = alert.infos[0]
    assert en.categories == ["Met", "Safety"] and en.response_types == ["Evacuate", "Monitor"]
    assert (en.urgency, en.severity, en.certainty) == ("Immediate", "Severe", "Observed")
    assert en.description == "Rising water & <debris>." and en.instruction == "Leave now."
    assert en.expires == datetime(2026, 5, 1, 18, tzinfo=UTC)
    assert en.effective == datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert [(c.value_name, c.value) for c in en.event_codes] == [("SAME", "FFW")]
    poly = shape(polygon_geojson(en.areas[0].polygons[0]))
    assert poly.symmetric_difference(AREA).area < 1e-9


def test_exercise_is_marked_in_the_cap_document() -> None:
    xml = build_cap(identifier="x.1", sender="s@example.org", sent=datetime.now(UTC), cap_status="Exercise",
                    msg_type="Alert", content=_content(status="Exercise"), area=AREA, area_desc="A")  # fmt: skip
    assert_valid_cap(xml)
    alert = parse_cap_alert(xml)
    assert alert.status == "Exercise" and alert.note and "EXERCISE" in alert.note
    assert all(i.headline and i.headline.startswith(EXERCISE_PREFIX) for i in alert.infos)


def test_multipolygon_area_gives_one_closed_polygon_per_part() -> None:
    two = shapely.MultiPolygon([AREA, shapely.affinity.translate(AREA, 0.5, 0)])
    xml = build_cap(identifier="x.2", sender="s@example.org", sent=datetime.now(UTC), cap_status="Actual",
                    msg_type="Alert", content=_content(), area=two, area_desc="Two")  # fmt: skip
    assert_valid_cap(xml)
    polys = parse_cap_alert(xml).infos[0].areas[0].polygons
    assert len(polys) == 2
    for p in polys:
        pairs = p.split()
        assert len(pairs) >= 4 and pairs[0] == pairs[-1]
        lat, lon = map(float, pairs[0].split(","))
        assert 41 < lat < 43 and -92 < lon < -90  # latitude first


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("<sent>2026-05-01T12:00:00-00:00</sent>", "not YYYY"),
        ("<polygon>41.9,-91.7 41.9,-91.6 42.0,-91.6 42.0,-91.7</polygon>", "not closed"),
        ("<polygon>41.9,-91.7 41.9,-91.6 41.9,-91.7</polygon>", "at least 4"),
        ("<references>sitrep@example.org,abc</references>", "sender,identifier,sent"),
    ],
)
def test_rule_checker_catches_what_the_schema_misses(bad: str, problem: str) -> None:
    xml = build_cap(identifier="x.3", sender="s@example.org", sent=datetime(2026, 5, 1, 12, tzinfo=UTC),
                    cap_status="Actual", msg_type="Alert", content=_content(), area=AREA, area_desc="A",
                    references=["s@example.org,x.0,2026-05-01T11:00:00-00:00"])  # fmt: skip
    text = xml.decode()
    tag = bad.split(">")[0] + ">"
    start = text.index(tag)
    end = text.index("</" + tag[1:], start) + len(tag) + 1
    if tag == "<sent>":
        bad = "<sent>2026-05-01T12:00:00Z</sent>"
    broken = (text[:start] + bad + text[end:]).encode()
    assert any(problem in p for p in check_rules(broken)), check_rules(broken)


def test_rule_checker_catches_order_and_effective_after_expires() -> None:
    content = _content(effective="2026-05-02T00:00:00Z")
    xml = build_cap(identifier="x.4", sender="s@example.org", sent=datetime(2026, 5, 1, 12, tzinfo=UTC),
                    cap_status="Actual", msg_type="Alert", content=content, area=AREA, area_desc="A")  # fmt: skip
    assert any("after expires" in p for p in check_rules(xml))
    text = xml.decode()
    moved = text.replace("<urgency>Immediate</urgency>", "").replace(
        "<event>", "<urgency>Immediate</urgency><event>", 1
    )
    assert any("out of order" in p for p in check_rules(moved.encode()))


def test_cap_time_has_offset_and_no_fraction() -> None:
    assert cap_time(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)) == "2026-01-02T03:04:05-00:00"
    east = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert cap_time(east) == "2026-01-02T03:04:05-00:00"


def test_huge_polygon_is_simplified_to_a_covering_within_the_budget() -> None:
    # A wiggly 1,000-vertex ring around Cedar Rapids.
    ring = []
    for i in range(1000):
        a = 2 * math.pi * i / 1000
        r = 0.1 + 0.01 * math.sin(a * 37)
        ring.append((-91.67 + r * math.cos(a), 41.98 + r * math.sin(a) * 0.75))
    src = shapely.Polygon(ring)
    res = cover_area(src, max_vertices=100, description="wiggle", source={"kind": "drawn"})
    assert res.simplified and res.extra_m2 > 0
    assert shapely.count_coordinates(res.geometry) <= 100
    assert shapely.covers(res.geometry, src)
    xml = build_cap(identifier="x.5", sender="s@example.org", sent=datetime.now(UTC), cap_status="Actual",
                    msg_type="Alert", content=_content(), area=res.geometry, area_desc="wiggle")  # fmt: skip
    assert_valid_cap(xml)
    # What CAP says still covers every original vertex.
    back = shape(polygon_geojson(parse_cap_alert(xml).infos[0].areas[0].polygons[0]))
    assert all(back.covers(Point(x, y)) for x, y in ring)


def test_small_polygon_is_kept_and_holes_are_dropped() -> None:
    with_hole = shapely.Polygon(AREA.exterior.coords, [[(-91.66, 41.97), (-91.64, 41.97), (-91.64, 41.99)]])
    res = cover_area(with_hole, max_vertices=100, description="d", source={"kind": "drawn"})
    assert not res.simplified
    assert len(res.geometry.interiors) == 0 and shapely.covers(res.geometry, with_hole)
    assert res.extra_m2 > 0  # the hole, now included


def test_content_checks_list_every_problem() -> None:
    bad = _content(
        status="Live",
        urgency="Soon",
        effective="2026-05-02T00:00:00Z",
        texts=[
            {
                "language": "en-US",
                "headline": " ",
                "description": "",
                "instruction": "",
                "sms_90": "x" * 91,
                "sms_360": "y" * 361,
            }
        ],
    )
    with pytest.raises(InvalidInput) as exc:
        check_content(bad, ipaws=True)
    fields = {e["field"] for e in exc.value.errors or []}
    assert {"status", "urgency", "expires", "texts[0].headline", "texts[0].description",
            "texts[0].sms_90", "texts[0].sms_360"} <= fields  # fmt: skip


def test_exercise_prefix_counts_against_the_sms_limit() -> None:
    text = "x" * 85
    ok = _content(status="Actual", texts=[{"language": "en", "headline": "h", "description": "d",
                                          "instruction": "", "sms_90": text, "sms_360": ""}])  # fmt: skip
    check_content(ok, ipaws=False)
    with pytest.raises(InvalidInput):
        check_content({**ok, "status": "Exercise"}, ipaws=False)
    assert sms_text(ok["texts"][0], "Test", long=False).startswith(EXERCISE_PREFIX)
    assert len(sms_text({"headline": "h" * 500}, "Actual", long=True)) == 360


def test_ipaws_profile_needs_a_same_code() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_content(_content(same_event_code=None, effective=None,
                               expires=(datetime.now(UTC) + timedelta(hours=1)).isoformat()), ipaws=True)  # fmt: skip
    assert exc.value.errors == [{"field": "same_event_code", "message": "required in the IPAWS profile"}]


def test_atom_index_is_read_by_the_feeds_index_parser() -> None:
    """The Atom RELAX NG in ../shared is compact syntax (lxml cannot load it): check Atom's required
    elements directly, and that the feeds' CAP-index reader follows our links."""
    from feeds.capindex import parse_index

    entries = [{"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "identifier": "x.1", "title": "Alert: Flood",
                "summary": "water", "updated": datetime.now(UTC), "cap_status": "Actual"}]  # fmt: skip
    xml = build_atom(entries, base_url="http://127.0.0.1:8000", updated=datetime.now(UTC))
    root = etree.fromstring(xml)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    for path in ("a:id", "a:title", "a:updated", "a:author/a:name", "a:entry/a:id", "a:entry/a:title",
                 "a:entry/a:updated"):  # fmt: skip
        assert root.find(path, ns) is not None, path
    result = parse_index(root, datetime.now(UTC))
    assert [f.url for f in result.follow] == [
        "http://127.0.0.1:8000/v1/alerts/1b4e28ba-2fa1-11d2-883f-0016d3cca427.cap"
    ]
