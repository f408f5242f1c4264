from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import msgspec
import pytest
from shapely.geometry import shape

from feeds import nws
from feeds.boundaries import CountyResolver
from feeds.model import FeedFormatError, HazardItem
from feeds.relative_dates import rewrite_relative_dates
from tests.feeds.support import sample_bytes

IOWA = "nws/weathergov_templated_alerts_active_area_IA_cedar_rapids_tornado_flood.json"
NATIONAL = "nws/weathergov_templated_alerts_active_national_northwest_529.json"
NOW = datetime(2025, 12, 15, 22, 0, tzinfo=UTC)


def test_iowa_capture_has_48_alerts_34_polygons_and_references() -> None:
    result = nws.parse(rewrite_relative_dates(sample_bytes(IOWA), NOW), now=NOW)
    assert len(result.items) == 48
    assert result.errors == []
    assert sum(1 for i in result.items if i.geometry is not None) == 34
    types = Counter(i.raw["messageType"] for i in result.items)
    assert types == {"Alert": 29, "Update": 19}
    updates = [i for i in result.items if i.raw["messageType"] == "Update"]
    assert all(i.references for i in updates)
    assert {i.status for i in result.items} == {"active"}
    assert "Tornado Warning" in {i.kind for i in result.items}
    for item in result.items:
        assert item.valid_from is not None and item.valid_from.tzinfo is not None
        if item.geometry is None:
            assert item.geocodes.get("UGC"), item.external_id
        else:
            assert item.geometry["type"] == "Polygon"
            assert shape(item.geometry).is_valid
            assert item.point is not None and shape(item.geometry).contains(
                shape({"type": "Point", "coordinates": item.point})
            )


def test_templated_times_without_rewrite_are_item_errors_not_crashes() -> None:
    result = nws.parse(sample_bytes(IOWA), now=NOW)
    assert len(result.items) == 48
    assert len(result.errors) == 48
    assert all("date:now" in e.reason for e in result.errors)
    assert all(i.valid_from is None and i.valid_until is None for i in result.items)


def test_national_capture_529_alerts_with_antimeridian_zones_kept_as_geocodes() -> None:
    result = nws.parse(rewrite_relative_dates(sample_bytes(NATIONAL), NOW), now=NOW)
    assert len(result.items) == 529 and result.errors == []
    assert sum(1 for i in result.items if i.geometry is not None) == 19
    by_zone = {z for i in result.items for z in i.geocodes.get("UGC", [])}
    assert {"PKZ414", "GUZ001", "MPZ001", "PMZ171"} <= by_zone
    bering = [i for i in result.items if "PKZ414" in i.geocodes.get("UGC", [])]
    assert bering and all(i.geometry is None for i in bering)
    assert all(i.raw.get("affectedZones") for i in bering)


def test_old_style_zone_capture_update_with_four_references() -> None:
    result = nws.parse(sample_bytes("nws/pynws_alerts_active_zone_ORZ004_2019.json"), now=NOW)
    (item,) = result.items
    assert item.external_id == "NWS-IDP-PROD-3965873-3369046"
    assert item.geometry is None
    assert len(item.geocodes["UGC"]) == 11 and len(item.geocodes["SAME"]) == 16
    assert item.references == [
        "NWS-IDP-PROD-3964821-3368352",
        "NWS-IDP-PROD-3965324-3368680",
        "NWS-IDP-PROD-3965155-3368578",
        "NWS-IDP-PROD-3963421-3367361",
    ]
    assert item.valid_from == datetime(2019, 12, 20, 21, 34, tzinfo=UTC)  # -08:00 offset applied
    assert item.valid_until == datetime(2019, 12, 22, 18, 0, tzinfo=UTC)  # `ends`, not `expires`
    assert item.status == "expired"
    assert item.severity == "severe"


def test_second_poll_capture_has_two_updates() -> None:
    result = nws.parse(sample_bytes("nws/pynws_alerts_active_zone_second_2019.json"), now=NOW)
    assert len(result.items) == 2
    assert all(i.raw["messageType"] == "Update" and i.references for i in result.items)


def test_phoenix_capture_county_zone_and_null_ends_falls_back_to_expires() -> None:
    now = datetime(2024, 7, 18, 18, 0, tzinfo=UTC)
    result = nws.parse(sample_bytes("nws/finity69x2_alerts_active_point_phoenix_2024-07-18.json"), now=now)
    assert len(result.items) == 2 and result.errors == []
    aqa = next(i for i in result.items if i.kind == "Air Quality Alert")
    assert aqa.geocodes == {"SAME": ["004013"], "UGC": ["AZC013"]}
    assert aqa.valid_until == datetime(2024, 7, 20, 4, 0, tzinfo=UTC)
    assert aqa.severity == "unknown"
    assert aqa.external_id.startswith("urn:oid:2.49.0.1.840.0.")


def _feature(**props: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "x1",
        "status": "Actual",
        "messageType": "Alert",
        "event": "Test",
        "sent": "2026-01-01T00:00:00-06:00",
        "expires": "2026-01-01T03:00:00-06:00",
        "geocode": {"UGC": ["IAC113"], "SAME": ["019113"]},
    }
    base.update(props)
    return {"type": "Feature", "geometry": None, "properties": base}


def _doc(*features: dict[str, object]) -> bytes:
    return msgspec.json.encode({"type": "FeatureCollection", "@saved": "2026", "features": list(features)})


def test_cancel_message_ends_references_and_non_actual_is_skipped() -> None:
    now = datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
    cancel = _feature(id="c2", messageType="Cancel", references=[{"identifier": "x1", "sender": "s", "sent": "t"}])
    test_msg = _feature(id="t3", status="Test")
    result = nws.parse(_doc(cancel, test_msg, {"type": "Feature"}), now=now)
    assert [(i.external_id, i.status, i.references) for i in result.items] == [("c2", "cancelled", ["x1"])]
    assert {e.external_id for e in result.errors} == {"t3", None}


def test_unreadable_document_raises_format_error() -> None:
    with pytest.raises(FeedFormatError):
        nws.parse(b"<html>oops</html>")
    with pytest.raises(FeedFormatError):
        nws.parse(b'{"type": "Feature"}')


class _Zones:
    def __init__(self, shapes: dict[str, dict[str, object]]) -> None:
        self.shapes = shapes
        self.asked: list[str] = []

    async def geometry_for(self, ugc_or_same: str) -> dict[str, object] | None:
        self.asked.append(ugc_or_same)
        return self.shapes.get(ugc_or_same)


def _square(x: float, y: float) -> dict[str, object]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + 1, y], [x + 1, y + 1], [x, y + 1], [x, y]]]}


async def test_resolve_geometry_unions_zone_shapes_and_reports_missing() -> None:
    item = HazardItem(source="nws", external_id="a", version="1", kind="Flood Watch",
                      geocodes={"UGC": ["IAZ052", "IAZ053", "IAZ999"]})  # fmt: skip
    zones = _Zones({"IAZ052": _square(0, 0), "IAZ053": _square(1, 0)})
    resolved, missing = await nws.resolve_geometry(item, zones)
    assert missing == ["IAZ999"]
    assert resolved.geometry is not None and resolved.geometry["type"] == "Polygon"
    assert shape(resolved.geometry).area == pytest.approx(2.0)
    assert resolved.point is not None


async def test_resolve_geometry_counties_through_fips() -> None:
    counties = {"19113": {"type": "Feature", "geometry": _square(-92, 41.8)}}
    item = HazardItem(source="nws", external_id="b", version="1", kind="x", geocodes={"SAME": ["019113"]})
    resolved, missing = await nws.resolve_geometry(item, CountyResolver(counties))
    assert missing == [] and resolved.geometry is not None
    item2 = HazardItem(source="nws", external_id="c", version="1", kind="x", geocodes={"UGC": ["IAC113"]})
    resolved2, _ = await nws.resolve_geometry(item2, CountyResolver(counties))
    assert resolved2.geometry == resolved.geometry


async def test_resolve_items_unions_each_code_set_once_and_reports_missing() -> None:
    zones = _Zones({"IAZ052": _square(0, 0), "IAZ053": _square(1, 0)})
    items = [
        HazardItem(source="nws", external_id=str(n), version="1", kind="x", geocodes={"UGC": codes})
        for n, codes in enumerate([["IAZ052", "IAZ053"], ["IAZ052", "IAZ053"], ["IAZ999"], ["IAZ053"]])
    ]
    errors = await nws.resolve_items(items, zones)
    assert zones.asked.count("IAZ052") == 1  # two alerts, one union
    assert items[0].geometry == items[1].geometry and shape(items[0].geometry).area == pytest.approx(2.0)
    assert items[2].geometry is None and [(e.external_id, e.reason) for e in errors] == [("2", "no shape for IAZ999")]
    assert shape(items[3].geometry).area == pytest.approx(1.0) and items[3].point is not None
