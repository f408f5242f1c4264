"""Live state and history queries: nearby, list filters and scope, track, hexbins, H3 parents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import h3
import httpx
import pytest
from pyproj import Geod

from geo.h3index import cell_for, cell_to_str
from server.positions.queries import h3_parent_sql
from tests.conftest import Database
from tests.positions.helpers import device_headers, fix, iso, unique_time

# A spot far from the demo city so only this test's responders are there.
FAR = (-100.0, 45.0)


async def test_h3_parent_bit_arithmetic_matches_h3(db: Any) -> None:
    cell = cell_for(-91.6656, 41.9779)
    for res in range(0, 10):
        got = await db.fetchval(f"SELECT {h3_parent_sql('$1::int8', res)}", cell)
        assert cell_to_str(got) == h3.cell_to_parent(cell_to_str(cell), res)


async def test_nearby_orders_by_geodesic_distance(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], fresh: Any
) -> None:
    geod = Geod(ellps="WGS84")
    # Placed north and east: in degrees east looks farther/nearer than it is; geodesic metres decide.
    offsets = [(0, 900), (90, 700), (45, 1500), (180, 300), (270, 2500)]
    expected = {}
    for _i, (azimuth, dist) in enumerate(offsets):
        device = await fresh()
        lon, lat, _ = geod.fwd(FAR[0], FAR[1], azimuth, dist)
        r = await client.post("/v1/positions", json=[fix(lon=lon, lat=lat)], headers=device_headers(device))
        assert r.json()["accepted"], r.text
        expected[device["responder_id"]] = dist
    r = await client.get(
        "/v1/responders/nearby",
        params={"lon": FAR[0], "lat": FAR[1], "radius_m": 2000, "limit": 10},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    got = [(x["id"], x["distance_m"]) for x in r.json()]
    want = sorted((rid, d) for rid, d in expected.items() if d <= 2000)
    assert [g[0] for g in got] == [rid for rid, _ in sorted(want, key=lambda t: t[1])]
    for rid, dist in got:
        assert dist == pytest.approx(expected[rid], abs=0.5)
    r = await client.get(
        "/v1/responders/nearby",
        params={"lon": FAR[0], "lat": FAR[1], "radius_m": 2000, "status": "off_duty"},
        headers=admin_headers,
    )
    assert all(x["status"] == "off_duty" for x in r.json())


async def test_list_filters_bbox_cells_status_and_pagination(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], fresh: Any
) -> None:
    spot = (-101.0, 46.0)
    ids = []
    for i in range(3):
        device = await fresh()
        await client.post(
            "/v1/positions",
            json=[fix(lon=spot[0] + i * 0.001, lat=spot[1], battery_pct=50.0 + i)],
            headers=device_headers(device),
        )
        ids.append(device["responder_id"])
    bbox = f"{spot[0] - 0.01},{spot[1] - 0.01},{spot[0] + 0.01},{spot[1] + 0.01}"
    r = await client.get("/v1/responders", params={"bbox": bbox}, headers=admin_headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert sorted(x["id"] for x in items) == sorted(ids)
    assert all(x["position"] and x["age_s"] >= 0 and x["stale"] is False for x in items)
    assert {x["battery_pct"] for x in items} == {50.0, 51.0, 52.0}
    parent = h3.cell_to_parent(h3.latlng_to_cell(spot[1], spot[0], 9), 6)
    r = await client.get("/v1/responders", params={"cells": parent}, headers=admin_headers)
    assert sorted(x["id"] for x in r.json()["items"]) == sorted(ids)
    # Pagination walks the whole list without repeats.
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/responders", params=params, headers=admin_headers)).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) >= 240
    r = await client.get("/v1/responders", params={"status": "busy", "limit": 500}, headers=admin_headers)
    assert r.json()["items"] and all(x["status"] == "busy" for x in r.json()["items"])
    assert (await client.get("/v1/responders", params={"bbox": "1,2,3"}, headers=admin_headers)).status_code == 422
    assert (await client.get("/v1/responders", params={"cells": "zz"}, headers=admin_headers)).status_code == 422


async def test_scope_responders_see_their_team_and_viewers_are_refused(
    client: httpx.AsyncClient,
    database: Database,
    responder_headers: dict[str, str],
    viewer_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    me = (await client.get("/v1/me", headers=responder_headers)).json()
    own = database.devices[0]["responder_id"]
    r = await client.get("/v1/responders", params={"limit": 500}, headers=responder_headers)
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) > 1 and own in {x["id"] for x in items}
    assert {x["team_id"] for x in items if x["id"] != own} == {me["team_id"]}
    outsider = next(
        d["responder_id"] for d in database.devices if d["responder_id"] not in {x["id"] for x in r.json()["items"]}
    )
    assert (await client.get(f"/v1/responders/{outsider}", headers=responder_headers)).status_code == 403
    assert (await client.get("/v1/responders", headers=viewer_headers)).status_code == 403
    near = {"lon": -91.66, "lat": 41.97, "radius_m": 1000}
    assert (await client.get("/v1/responders/nearby", params=near, headers=viewer_headers)).status_code == 403
    assert (await client.get("/v1/positions/hexbins", headers=viewer_headers)).status_code == 403


async def test_track_is_geojson_and_simplifies_in_metres(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], fresh: Any
) -> None:
    device = await fresh()
    start = unique_time(3000)
    geod = Geod(ellps="WGS84")
    lon, lat = -102.0, 44.0
    items = []
    # A straight eastward walk with 2 m zig-zags: simplification at 10 m keeps only the ends.
    for i in range(60):
        lon_i, lat_i, _ = geod.fwd(lon, lat, 90, i * 20)
        lon_i, lat_i, _ = geod.fwd(lon_i, lat_i, 0, 2 if i % 2 else -2)
        items.append(fix(when=start + timedelta(seconds=i * 10), lon=lon_i, lat=lat_i))
    r = await client.post("/v1/positions", json=items, headers=device_headers(device))
    assert len(r.json()["accepted"]) == 60
    window = {"from": iso(start - timedelta(seconds=1)), "to": iso(start + timedelta(seconds=600))}
    full = (
        await client.get(f"/v1/responders/{device['responder_id']}/track", params=window, headers=admin_headers)
    ).json()
    assert full["type"] == "Feature" and full["geometry"]["type"] == "LineString"
    assert len(full["geometry"]["coordinates"]) == 60 and full["properties"]["fix_count"] == 60
    assert full["geometry"]["coordinates"][0] == pytest.approx([items[0]["lon"], items[0]["lat"]], abs=1e-7)
    simple = (
        await client.get(
            f"/v1/responders/{device['responder_id']}/track",
            params={**window, "simplify_m": 10},
            headers=admin_headers,
        )
    ).json()
    assert simple["properties"]["point_count"] < 10 and simple["properties"]["fix_count"] == 60
    fine = (
        await client.get(
            f"/v1/responders/{device['responder_id']}/track",
            params={**window, "simplify_m": 0.5},
            headers=admin_headers,
        )
    ).json()
    assert fine["properties"]["point_count"] > 50


async def test_hexbins_count_fixes_per_parent_cell(
    client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str], fresh: Any
) -> None:
    device = await fresh()
    start = unique_time(5000)
    spots = [(-103.0, 43.0)] * 4 + [(-103.3, 43.2)] * 2
    items = [fix(when=start + timedelta(seconds=i), lon=lo, lat=la) for i, (lo, la) in enumerate(spots)]
    await client.post("/v1/positions", json=items, headers=device_headers(device))
    params = {
        "res": 6,
        "bbox": "-104,42.5,-102.5,43.5",
        "from": iso(start - timedelta(seconds=1)),
        "to": iso(start + timedelta(seconds=60)),
    }
    r = await client.get("/v1/positions/hexbins", params=params, headers=admin_headers)
    assert r.status_code == 200, r.text
    cells = {c["cell"]: c["count"] for c in r.json()["cells"]}
    a = h3.cell_to_parent(h3.latlng_to_cell(43.0, -103.0, 9), 6)
    b = h3.cell_to_parent(h3.latlng_to_cell(43.2, -103.3, 9), 6)
    assert cells == {a: 4, b: 2}
    assert (await client.get("/v1/positions/hexbins", params={"res": 12}, headers=admin_headers)).status_code == 422
