from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from shapely.geometry import shape

from feeds import gdacs
from feeds.model import FeedFormatError
from tests.feeds.support import sample_bytes


@pytest.mark.parametrize(
    ("rel", "count", "types"),
    [("gdacs/gdacs_rss_2019-12-30.xml", 16, {"DR": 11, "TC": 3, "EQ": 2}),
     ("gdacs/gdacs_rss_24h_2019-12-30.xml", 21, {"DR": 11, "EQ": 8, "TC": 2}),
     ("gdacs/gdacs_rss_7d_2019-12-30.xml", 115, {"EQ": 100, "DR": 11, "TC": 3, "VO": 1})],
)  # fmt: skip
def test_feeds_with_bom_parse_with_real_counts(rel: str, count: int, types: dict[str, int]) -> None:
    data = sample_bytes(rel)
    assert data.startswith(b"\xef\xbb\xbf")
    result = gdacs.parse(data)
    assert len(result.items) == count and result.errors == []
    assert Counter(i.kind for i in result.items) == types


def test_bbox_is_lonmin_lonmax_latmin_latmax_and_ids_carry_episodes() -> None:
    result = gdacs.parse(sample_bytes("gdacs/gdacs_rss_2019-12-30.xml"))
    tc = next(i for i in result.items if i.external_id == "TC1000643")
    assert tc.version == "1"
    assert tc.point == (59.8, -19.4)
    minx, miny, maxx, maxy = shape(tc.geometry).bounds
    assert (round(minx, 3), round(maxx, 3)) == (55.078, 81.078)
    assert (round(miny, 3), round(maxy, 3)) == (-46.783, -20.783)
    assert tc.valid_from == datetime(2019, 12, 29, 12, 0, tzinfo=UTC)
    assert tc.severity == "minor" and tc.raw["alertlevel"] == "Green"
    assert {i.severity for i in result.items if i.raw["alertlevel"] == "Orange"} == {"severe"}
    assert Counter(i.status for i in result.items) == {"expired": 9, "active": 7}


def _rss(item_xml: str) -> bytes:
    return (
        '\ufeff<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:gdacs="http://www.gdacs.org" '
        'xmlns:georss="http://www.georss.org/georss"><channel>' + item_xml + "</channel></rss>"
    ).encode()


def test_bbox_across_the_antimeridian_is_split_and_bad_items_are_errors() -> None:
    ok = ("<item><gdacs:eventtype>TC</gdacs:eventtype><gdacs:eventid>7</gdacs:eventid><gdacs:episodeid>2</gdacs:episodeid>"
          "<gdacs:alertlevel>Red</gdacs:alertlevel><gdacs:bbox>175 -175 -20 -10</gdacs:bbox>"
          "<georss:point>-15 179</georss:point></item>")  # fmt: skip
    bad = "<item><title>no ids</title></item>"
    worse = (
        "<item><gdacs:eventtype>EQ</gdacs:eventtype><gdacs:eventid>8</gdacs:eventid><gdacs:bbox>1 2</gdacs:bbox></item>"
    )
    result = gdacs.parse(_rss(ok + bad + worse))
    (item,) = result.items
    assert item.geometry["type"] == "MultiPolygon" and item.severity == "extreme"
    assert len(result.errors) == 2 and any("bbox" in e.reason for e in result.errors)


def test_not_rss_is_a_format_error() -> None:
    with pytest.raises(FeedFormatError):
        gdacs.parse(b"<feed/>")


def test_current_events_stay_valid_a_horizon_past_the_fetch_not_their_todate() -> None:
    """2019 documents fetched today: ``todate`` is years past, yet current events stay active for
    their type's horizon after the fetch; non-current ones are expired at their ``todate``."""
    from datetime import timedelta

    fetched = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    result = gdacs.parse(sample_bytes("gdacs/gdacs_rss_7d_2019-12-30.xml"), now=fetched)
    active = [i for i in result.items if i.status == "active"]
    assert {i.kind for i in active} >= {"EQ", "TC", "DR"}
    for item in active:
        assert item.valid_until == fetched + timedelta(hours=gdacs.HORIZON_H[item.kind])
    for item in result.items:
        if item.status == "expired":
            assert item.valid_until == datetime.fromisoformat(item.raw["todate"]) < fetched


def test_an_event_fetched_before_its_todate_runs_a_horizon_past_the_todate() -> None:
    from datetime import timedelta

    result = gdacs.parse(sample_bytes("gdacs/gdacs_rss_2019-12-30.xml"), now=datetime(2019, 12, 29, tzinfo=UTC))
    tc = next(i for i in result.items if i.external_id == "TC1000643")
    assert tc.status == "active" and tc.raw["todate"] == "2019-12-29T12:00:00+00:00"
    assert tc.valid_until == datetime(2019, 12, 29, 12, tzinfo=UTC) + timedelta(hours=72)


def test_alert_level_none_or_not_current_ends_the_event() -> None:
    item = ("<item><gdacs:eventtype>FL</gdacs:eventtype><gdacs:eventid>9</gdacs:eventid><gdacs:episodeid>3</gdacs:episodeid>"
            "<gdacs:alertlevel>{level}</gdacs:alertlevel><gdacs:iscurrent>{current}</gdacs:iscurrent>"
            "<gdacs:todate>Sun, 29 Dec 2019 12:00:00 GMT</gdacs:todate><georss:point>10 20</georss:point></item>")  # fmt: skip
    now = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = [
        gdacs.parse(_rss(item.format(level=level, current=current)), now=now).items[0].status
        for level, current in (("Green", "true"), ("None", "true"), ("Red", "false"))
    ]
    assert statuses == ["active", "expired", "expired"]
