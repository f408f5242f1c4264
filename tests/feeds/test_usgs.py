from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from shapely.geometry import shape

from feeds import usgs
from feeds.model import FeedFormatError
from tests.feeds.support import sample_bytes

WEEK = "usgs/usgs_all_week_2014-05.geojson"
DAY = "usgs/usgs_all_day_2014-05.geojson"


@pytest.mark.parametrize(
    ("rel", "count"),
    [(DAY, 146), (WEEK, 1513), ("usgs/usgs_all_hour_2017-12-03.geojson", 8),
     ("usgs/usgs_significant_week_2017-12-11.geojson", 4)],
)  # fmt: skip
def test_every_summary_feed_parses_fully(rel: str, count: int) -> None:
    result = usgs.parse(sample_bytes(rel), now=datetime(2014, 4, 15, tzinfo=UTC))
    assert len(result.items) == count and result.errors == []
    for item in result.items:
        assert item.geometry is not None and shape(item.geometry).is_valid
        assert item.point is not None
        assert item.version.isdigit()


def test_mixed_case_status_is_normalised() -> None:
    result = usgs.parse(sample_bytes(DAY))
    assert {i.raw["status"] for i in result.items} == {"automatic", "reviewed"}
    assert {i.status for i in result.items} <= {"active", "expired"}


def test_negative_depths_and_quarry_blasts_are_kept() -> None:
    result = usgs.parse(sample_bytes(WEEK))
    negative = sorted(i.raw["depth_km"] for i in result.items if i.raw["depth_km"] < 0)
    assert negative == [-9.9, -3.4, -3.3, -3.1]
    assert {"quarry", "quarry_blast"} <= {i.kind for i in result.items}
    assert all(i.raw["tz_min"] is not None for i in result.items)


def test_events_near_the_antimeridian_stay_valid() -> None:
    result = usgs.parse(sample_bytes(WEEK))
    near = [i for i in result.items if i.point and abs(i.point[0]) > 179]
    assert len(near) == 6
    for item in near:
        minx, _, maxx, _ = shape(item.geometry).bounds
        assert -180 <= minx and maxx <= 180


def _quake(qid: str, lon: float, lat: float, mag: float | None, **props: object) -> dict[str, object]:
    p: dict[str, object] = {"mag": mag, "time": 1_700_000_000_000, "updated": 1_700_000_100_000, "tz": None,
                            "status": "reviewed", "type": "earthquake", "types": ",origin,", "title": qid}  # fmt: skip
    p.update(props)
    return {"type": "Feature", "id": qid, "properties": p, "geometry": {"type": "Point", "coordinates": [lon, lat, 10]}}


def _doc(*features: dict[str, object]) -> bytes:
    return msgspec.json.encode({"type": "FeatureCollection", "metadata": {}, "features": list(features)})


def test_impact_circle_crossing_the_antimeridian_is_split() -> None:
    now = datetime(2023, 11, 14, 23, 0, tzinfo=UTC)
    result = usgs.parse(_doc(_quake("am1", 179.95, 51.5, 6.0)), now=now)
    (item,) = result.items
    assert item.geometry is not None and item.geometry["type"] == "MultiPolygon"
    parts = [shape({"type": "Polygon", "coordinates": c}) for c in item.geometry["coordinates"]]
    assert {round(p.bounds[2]) for p in parts} | {round(p.bounds[0]) for p in parts} >= {180, -180}


def test_deleted_events_are_cancelled_and_jsonp_is_accepted() -> None:
    body = _doc(_quake("d1", 10, 10, 3.0, status="deleted"), _quake("d2", 10, 10, 3.0, types=",deleted,origin,"),
                _quake("ok", 10, 10, None))  # fmt: skip
    result = usgs.parse(b"eqfeed_callback(" + body + b");")
    assert {i.external_id: i.status for i in result.items} == {"d1": "cancelled", "d2": "cancelled", "ok": "expired"}
    ok = next(i for i in result.items if i.external_id == "ok")
    assert ok.severity == "unknown" and ok.raw["radius_km"] == usgs.MIN_RADIUS_KM


def test_bad_points_are_item_errors() -> None:
    bad = {
        "type": "Feature",
        "id": "b1",
        "properties": {"mag": 2},
        "geometry": {"type": "Point", "coordinates": [999, 0]},
    }
    result = usgs.parse(_doc(bad, _quake("g", 1, 1, 2.0)))
    assert [i.external_id for i in result.items] == ["g"]
    assert result.errors[0].external_id == "b1" and "bad point" in result.errors[0].reason
    with pytest.raises(FeedFormatError):
        usgs.parse(b"not json at all")


def test_impact_radius_rule_grows_with_magnitude_and_is_clamped() -> None:
    radii = [usgs.impact_radius_km(m) for m in (-1, 2, 4, 5, 6, 7, 9.5)]
    assert radii == sorted(radii)
    assert radii[0] == usgs.MIN_RADIUS_KM and radii[-1] == usgs.MAX_RADIUS_KM
    assert usgs.impact_radius_km(5) == pytest.approx(25.1, rel=0.01)
    assert usgs.severity_for(6.4, "green", 1) == "severe"  # tsunami raises a green alert
    assert usgs.severity_for(7.2, None, 0) == "extreme"


def test_significant_feed_tsunami_event() -> None:
    result = usgs.parse(sample_bytes("usgs/usgs_significant_week_2017-12-11.geojson"))
    tsunami = [i for i in result.items if i.raw["tsunami"] == 1]
    assert len(tsunami) == 2 and {i.severity for i in tsunami} <= {"severe", "extreme"}
