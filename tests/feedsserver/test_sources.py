"""Each source end to end: fake feed server (real HTTP) → leader → PostgreSQL sink → PostGIS + H3 cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from feeds import gdacs, nws
from feeds.boundaries import same_to_fips
from feeds.fake import FakeFeedApp
from feeds.fake_payloads import Scenario
from feeds.relative_dates import rewrite_relative_dates
from tests.conftest import samples_dir
from tests.feedsserver.helpers import create_feed, poll

Fake = tuple[FakeFeedApp, str]
IOWA = "nws/weathergov_templated_alerts_active_area_IA_cedar_rapids_tornado_flood.json"


async def _hazards(fdb: Any, source: str, ids: list[str]) -> dict[str, Any]:
    rows = await fdb.fetch(
        "SELECT h.external_id, h.status, h.version, h.h3_res, h.updated_at, ST_AsText(h.geom) AS wkt, "
        "(SELECT count(*) FROM hazard_cells c WHERE c.hazard_id = h.id) AS cells "
        "FROM hazards h WHERE h.source = $1 AND h.external_id = ANY($2::text[])",
        source,
        ids,
    )
    return {r["external_id"]: r for r in rows}


async def test_nws_iowa_capture_stores_polygons_and_resolves_counties_and_zones(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    _, base = fake
    await create_feed(api, admin, name="iowa", kind="nws", url=f"{base}/samples/{IOWA}", interval_s=60)
    f = await poll(api, admin, "iowa")
    expected = nws.parse(rewrite_relative_dates((samples_dir() / IOWA).read_bytes(), datetime.now(UTC)))
    polygons = [i.external_id for i in expected.items if i.geometry is not None]
    nulls = [i for i in expected.items if i.geometry is None]
    assert len(polygons) == 34 and len(nulls) == 14
    assert f["health"]["status"] == "ok" and f["health"]["items_last"] == 48, f
    stored = await _hazards(fdb, "nws", [i.external_id for i in expected.items])
    assert all(stored[i]["status"] == "active" and stored[i]["cells"] > 0 for i in polygons)
    # null geometries: resolved from the county table (SAME/UGC) and the zone endpoint, or item errors
    unresolved = {e["external_id"] for e in f["health"]["item_errors"]}
    assert {i.external_id for i in nulls} <= set(stored) | unresolved
    county_only = [i for i in nulls if all(u[2] == "C" for u in i.geocodes.get("UGC", []))]
    assert county_only, "the capture has county-based alerts"
    for item in county_only:
        fips = same_to_fips(item.geocodes["SAME"][0])
        inside = await fdb.fetchval(
            "SELECT ST_Within(ST_PointOnSurface(b.geom), h.geom) FROM hazards h, boundaries b "
            "WHERE h.source = 'nws' AND h.external_id = $1 AND b.kind = 'county' AND b.code = $2",
            item.external_id,
            fips,
        )
        assert inside, (item.external_id, fips)


async def test_nws_repeat_is_304_update_replaces_and_cancel_ends(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    app, base = fake
    app.control({"feed": "nws", "action": "reset"})
    await create_feed(api, admin, name="nws-live", kind="nws", url=f"{base}/alerts/active", interval_s=60)
    await poll(api, admin, "nws-live")
    first = Scenario.nws_id(0)
    before = await _hazards(fdb, "nws", [first])
    assert before[first]["status"] == "active" and before[first]["cells"] > 0
    # a repeat: If-Modified-Since → 304, nothing written
    f = await poll(api, admin, "nws-live")
    assert f["health"]["last_outcome"] == "not_modified"
    assert "if-modified-since" in app.last_headers["nws"]
    assert app.last_headers["nws"]["user-agent"] == "sitrep-tests (tests@example.org)"
    assert (await _hazards(fdb, "nws", [first]))[first]["updated_at"] == before[first]["updated_at"]
    # an update: a new identifier referencing the old one, with a new polygon
    app.control({"feed": "nws", "action": "update"})
    await poll(api, admin, "nws-live")
    second = Scenario.nws_id(1)
    now = await _hazards(fdb, "nws", [first, second])
    assert now[first]["status"] == "ended" and now[second]["status"] == "active"
    assert now[second]["wkt"] != before[first]["wkt"]
    # a cancel ends it
    app.control({"feed": "nws", "action": "cancel"})
    await poll(api, admin, "nws-live")
    assert (await _hazards(fdb, "nws", [second]))[second]["status"] == "ended"


async def test_usgs_quakes_update_geometry_and_deleted_events_end(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    app, base = fake
    app.control({"feed": "usgs", "action": "reset"})
    url = f"{base}/earthquakes/feed/v1.0/summary/all_hour.geojson"
    await create_feed(api, admin, name="quakes", kind="usgs", url=url, interval_s=60)
    await poll(api, admin, "quakes")
    ids = ["fk00000001", "fk00000002", "fk00000003"]
    first = await _hazards(fdb, "usgs", ids)
    assert set(first) == set(ids) and all(r["status"] == "active" and r["cells"] > 0 for r in first.values())
    # antimeridian event: stored as a valid area on both sides or folded, never a world-wide band
    width = await fdb.fetchval(
        "SELECT ST_XMax(geom) - ST_XMin(geom) FROM hazards WHERE source = 'usgs' AND external_id = 'fk00000003'"
    )
    assert width < 5 or width > 355
    f = await poll(api, admin, "quakes")  # ETag → 304
    if f["health"]["last_outcome"] == "changed":
        # USGS regenerates the summary every minute (metadata.generated), and so does the fake: a minute
        # boundary between the two polls changes the ETag once. The next poll must then be a 304.
        f = await poll(api, admin, "quakes")
    assert f["health"]["last_outcome"] == "not_modified"
    assert app.last_headers["usgs"].get("if-none-match")
    app.control({"feed": "usgs", "action": "update"})  # stronger magnitude: a larger impact area
    await poll(api, admin, "quakes")
    upd = await _hazards(fdb, "usgs", ids)
    assert upd["fk00000001"]["version"] != first["fk00000001"]["version"]
    grew = await fdb.fetchval(
        "SELECT ST_Area(geom::geography) FROM hazards WHERE source = 'usgs' AND external_id = 'fk00000001'"
    )
    assert grew > 0 and upd["fk00000001"]["wkt"] != first["fk00000001"]["wkt"]
    app.control({"feed": "usgs", "action": "cancel"})  # the event is deleted
    await poll(api, admin, "quakes")
    assert (await _hazards(fdb, "usgs", ["fk00000001"]))["fk00000001"]["status"] == "ended"


async def test_gdacs_recorded_rss_with_bom(fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any) -> None:
    _, base = fake
    rel = "gdacs/gdacs_rss_2019-12-30.xml"
    await create_feed(api, admin, name="gdacs-2019", kind="gdacs", url=f"{base}/samples/{rel}", interval_s=300)
    f = await poll(api, admin, "gdacs-2019")
    expected = gdacs.parse((samples_dir() / rel).read_bytes())
    active = [i for i in expected.items if i.status == "active"]
    assert f["health"]["status"] == "ok" and f["health"]["items_last"] == len(expected.items)
    # the cyclones' track boxes (up to 8.2 million km²) are kept under GDACS's own area limit
    assert f["health"]["errors_last"] == 0 and f["health"]["item_errors"] == []
    assert len(active) >= 6 and any(i.external_id.startswith("TC") for i in active)
    stored = await _hazards(fdb, "gdacs", [i.external_id for i in active])
    # The 2019 events' todates are long past, but current events stay valid a horizon past the fetch
    # (feeds.gdacs), so the evaluator's expiry leaves them active.
    assert all(stored[i.external_id]["cells"] > 0 for i in active)
    assert {stored[i.external_id]["status"] for i in active} == {"active"}
    until = await fdb.fetch(
        "SELECT valid_until FROM hazards WHERE source = 'gdacs' AND external_id = ANY($1::text[])",
        [i.external_id for i in active],
    )
    assert min(r["valid_until"] for r in until) > datetime.now(UTC) + timedelta(hours=23)


async def test_firms_hotspots_become_fire_areas_with_their_h3_cells(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    _, base = fake
    url = f"{base}/api/area/csv/KEY/VIIRS_SNPP_NRT/world/1"
    await create_feed(api, admin, name="fires", kind="firms", url=url, interval_s=900)
    f = await poll(api, admin, "fires")
    assert f["health"]["status"] == "ok" and f["health"]["items_last"] >= 1
    rows = await fdb.fetch(
        "SELECT h.id, h.h3_res, h.raw, array_agg(c.cell) AS cells, bool_and(c.interior) AS interior "
        "FROM hazards h JOIN hazard_cells c ON c.hazard_id = h.id "
        "WHERE h.source = 'firms' AND h.status = 'active' GROUP BY h.id"
    )
    assert rows
    import h3

    for r in rows:
        raw = r["raw"] if isinstance(r["raw"], dict) else __import__("json").loads(r["raw"])
        assert r["h3_res"] == raw["h3_res"] == 7 and r["interior"]
        assert sorted(h3.int_to_str(c) for c in r["cells"]) == sorted(raw["h3_cells"])


async def test_cap_index_follows_links_and_records_hostile_and_invalid_documents(
    fake: Fake, api: httpx.AsyncClient, admin: dict[str, str], fdb: Any
) -> None:
    _, base = fake
    await create_feed(api, admin, name="cap-gen", kind="cap", url=f"{base}/cap/index.atom", interval_s=300)
    f = await poll(api, admin, "cap-gen")
    assert f["health"]["status"] == "ok" and f["health"]["items_last"] == 2
    assert await fdb.fetchval("SELECT count(*) FROM hazards WHERE source = 'cap' AND status = 'active'") >= 2
    # an index whose entries link to the XXE file and the schema-invalid CAP (served as samples)
    from tests.feeds.support import serve_app

    links = ["cap/googlecaplib_xee.cap", "cap/googlecaplib_noaa_errors.cap", "cap/googlecaplib_weather.cap"]
    entries = "".join(
        f"<entry><id>{base}/samples/{p}</id><title>{p}</title><updated>2026-01-01T00:00:00Z</updated>"
        f'<link href="{base}/samples/{p}" type="application/cap+xml"/></entry>'
        for p in links
    )
    atom = (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>urn:test</id><title>hostile</title><updated>2026-01-01T00:00:00Z</updated>{entries}</feed>"
    ).encode()

    async def index_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/atom+xml"), (b"content-length", str(len(atom)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": atom})

    async with serve_app(index_app) as index_base:
        await create_feed(api, admin, name="cap-hostile", kind="cap", url=f"{index_base}/index.atom", interval_s=300)
        f = await poll(api, admin, "cap-hostile")
    health = f["health"]
    assert health["status"] == "ok", health
    reasons = " | ".join(e["reason"] for e in health["item_errors"])
    assert health["errors_last"] >= 2
    assert "googlecaplib_xee.cap" in reasons and "DOCTYPE" in reasons  # refused, nothing fetched
    assert "schema-invalid" in reasons  # googlecaplib_noaa_errors.cap
