"""The fake feed server: generated payloads in every real format, replay, control endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from feeds import cap, firms, gdacs, nws, usgs
from feeds.fake import create_fake_feed_app
from tests.feeds.support import serve_app


async def test_generated_payloads_parse_without_any_samples() -> None:
    app = create_fake_feed_app(None)  # what a user's clone gets
    assert app.samples_dir is None
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        checks: list[tuple[str, Any, int]] = [
            ("/alerts/active", nws, 3),
            ("/alerts/active/zone/IAZ052", nws, 3),
            ("/earthquakes/feed/v1.0/summary/all_hour.geojson", usgs, 3),
            ("/earthquakes/feed/v1.0/summary/all_hour.geojsonp", usgs, 3),
            ("/xml/rss.xml", gdacs, 3),
            ("/api/area/csv/KEY/VIIRS_SNPP_NRT/-100,30,-80,50/1", firms, 2),
            ("/data/active_fire/modis-c6.1/csv/MODIS_C6_1_Global_24h.csv", firms, 2),
            ("/cap/index.atom", cap, 2),
        ]
        for path, parser, count in checks:
            r = await client.get(path)
            assert r.status_code == 200, path
            result = parser.parse(r.content)
            assert len(result.items) == count and result.errors == [], path
            assert {i.status for i in result.items} == {"active"}, path
        r = await client.get("/xml/rss.xml")
        assert r.content.startswith(b"\xef\xbb\xbf")
        quakes = usgs.parse((await client.get("/earthquakes/feed/v1.0/summary/all_hour.geojson")).content)
        assert any(i.geometry and i.geometry["type"] == "MultiPolygon" for i in quakes.items)  # antimeridian
        assert any(i.raw["depth_km"] < 0 for i in quakes.items)
        for link in cap.parse((await client.get("/cap/index.atom")).content).follow:
            alert = await client.get(link.url)
            assert alert.headers["content-type"] == "application/cap+xml"
            assert cap.parse(alert.content).items[0].geometry is not None
        assert (await client.get("/samples/nws/x.json")).status_code == 404
        assert (await client.get("/nowhere")).status_code == 404


async def test_control_endpoint_switches_modes_and_rejects_nonsense() -> None:
    app = create_fake_feed_app(None)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/_control", json={"feed": "gdacs", "mode": "429", "retry_after": 9})
        assert r.status_code == 200 and r.json()["modes"]["gdacs"] == "429"
        r = await client.get("/xml/rss.xml")
        assert r.status_code == 429 and r.headers["retry-after"] == "9"
        assert (await client.post("/_control", json={"feed": "gdacs", "mode": "explode"})).status_code == 400
        assert (await client.post("/_control", json={"feed": "nope", "mode": "ok"})).status_code == 400
        assert (await client.post("/_control", json={"feed": "nws", "replay": "nws/x.json"})).status_code == 400
        await client.post("/_control", json={"feed": "usgs", "action": "cancel"})
        quakes = usgs.parse((await client.get("/earthquakes/feed/v1.0/summary/all_hour.geojson")).content)
        assert {i.external_id: i.status for i in quakes.items}["fk00000001"] == "cancelled"
        status = (await client.get("/_control")).json()
        assert status["hits"]["gdacs"] == 1 and status["revisions"]["usgs"] == 0


async def test_replayed_weather_gov_capture_has_current_times(samples: Path) -> None:
    app = create_fake_feed_app(samples)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        await client.post(
            "/_control",
            json={"feed": "nws", "replay": "nws/weathergov_templated_alerts_active_national_northwest_529.json"},
        )
        r = await client.get("/alerts/active", headers={"Accept": "application/geo+json"})
        assert b'"date:' not in r.content and "max-age" in r.headers["cache-control"]
        result = nws.parse(r.content)
        assert len(result.items) == 529 and result.errors == []
        now = datetime.now(UTC)
        assert all(i.valid_from is not None and abs((i.valid_from - now).days) < 30 for i in result.items)
        raw = await client.get("/samples/forecast/weathergov_templated_gridpoints_DVN_30,86_forecast_cedar_rapids.json")
        assert b'"date:' not in raw.content and b"/P7DT13H" in raw.content


async def test_zone_shapes_lie_where_such_zones_are_and_differ_by_code() -> None:
    """Marine zones offshore of the water their prefix names, land zones inside their state, the
    generated Flood Watch's own zones near the city; every code its own square."""
    from shapely.geometry import Point, box, shape

    from feeds.fake_payloads import DEFAULT_CITY, LOCAL_ZONES
    from feeds.fake_zones import MARINE, STATES

    app = create_fake_feed_app(None)
    codes = ["PKZ414", "PZZ356", "AMZ330", "ANZ335", "GMZ850", "LMZ740", "LSZ162", "LEZ144", "IAZ066", "TXZ213",
             "GUZ001", "CAZ041", *LOCAL_ZONES]  # fmt: skip
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        shapes = {}
        for code in codes:
            r = await client.get(f"/zones/forecast/{code}")
            assert r.status_code == 200
            shapes[code] = shape(r.json()["geometry"])
    assert len({s.wkt for s in shapes.values()}) == len(codes)
    city = Point(*DEFAULT_CITY)
    for code, geom in shapes.items():
        if code in LOCAL_ZONES:
            assert geom.distance(city) < 1.0
        elif code[:3] in MARINE:
            assert box(*MARINE[code[:3]]).contains(geom) and geom.distance(city) > 3.0
        else:
            assert box(*STATES[code[:2]]).contains(geom)
    # the Pacific coast zone is offshore of California/Oregon, the Gulf one south of the coast
    assert shapes["PZZ356"].bounds[2] < -124.9 and shapes["GMZ850"].bounds[3] < 28.5
