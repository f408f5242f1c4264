"""Hazard-aware recommendations: the nearest unit stands in a flood, so the second-nearest wins."""

from __future__ import annotations

import uuid

import httpx

from tests.incidents.helpers import create_incident, fresh_responders, place, point

LON0, LAT0 = -95.0, 40.0
M_LON, M_LAT = 85_394.0, 111_035.0  # metres per degree at 40° N


def at(dx_m: float, dy_m: float) -> tuple[float, float]:
    return LON0 + dx_m / M_LON, LAT0 + dy_m / M_LAT


async def test_nearest_unit_inside_a_flood_is_excluded_and_the_second_nearest_wins(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: object
) -> None:
    # a flood box east of the incident (not covering it); A stands in it, C's straight route crosses it
    x0, y0 = at(200, -400)
    x1, y1 = at(500, 100)
    name = f"Flood {uuid.uuid4().hex[:6]}"
    hazard = await db.fetchval(  # type: ignore[attr-defined]
        "INSERT INTO hazards (kind, severity, title, geom, h3_res, status) VALUES ('flood', 'severe', $5, "
        "ST_MakeEnvelope($1, $2, $3, $4, 4326), 9, 'active') RETURNING id::text",
        x0,
        y0,
        x1,
        y1,
        name,
    )
    # an expired hazard over B must not matter
    bx0, by0 = at(-900, -100)
    bx1, by1 = at(-700, 100)
    await db.execute(  # type: ignore[attr-defined]
        "INSERT INTO hazards (kind, title, geom, h3_res, status, valid_until) VALUES ('flood', 'old', "
        "ST_MakeEnvelope($1, $2, $3, $4, 4326), 9, 'active', now() - interval '1 hour')",
        bx0,
        by0,
        bx1,
        by1,
    )
    a, b, c, stale, far = await fresh_responders(db, 5, skills=["swiftwater"])
    await place(client, db, None, a, *at(300, 0))  # 300 m, inside the flood
    await place(client, db, None, b, *at(-800, 0))  # 800 m, clear
    await place(client, db, None, c, *at(700, -300))  # 762 m, route crosses the flood
    await place(client, db, None, stale, *at(-100, 0), age_s=3600)  # nearest of all, but stale
    await place(client, db, None, far, *at(0, 6000))  # 6 km north
    incident = await create_incident(
        client, coord_headers, type="flood", location=point(LON0, LAT0), title="Car in water"
    )

    r = await client.get(f"/v1/incidents/{incident['id']}/recommendations", params={"limit": 5}, headers=coord_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["items"]
    ids = [i["id"] for i in items]
    assert ids[0] == b, items
    assert a not in ids and stale not in ids
    assert ids == [b, c, far]
    best = items[0]
    assert best["reasons"][0].startswith("800 m") and "has skill: swiftwater" in best["reasons"]
    assert not best["route_crosses_hazard"] and best["inside_hazard"] is None
    crossing = items[1]
    assert crossing["route_crosses_hazard"] and crossing["crossed_hazards"] == [hazard]
    assert f"route crosses hazard {name} (penalty)" in crossing["reasons"]
    assert crossing["distance_m"] < best["distance_m"] and crossing["score"] < best["score"]
    assert body["excluded"][a].startswith(f"inside hazard {name}")
    assert body["required_skills"] == ["swiftwater"]

    flagged = (
        await client.get(
            f"/v1/incidents/{incident['id']}/recommendations",
            params={"limit": 5, "include_flagged": "true"},
            headers=coord_headers,
        )
    ).json()["items"]
    entry = next(i for i in flagged if i["id"] == a)
    assert entry["inside_hazard"] == hazard and f"inside hazard {name} (flagged)" in entry["reasons"]
    assert flagged[0]["id"] == b  # the flag's penalty keeps it below the safe unit

    # a busy unit is not recommended
    assign = await client.post(
        f"/v1/incidents/{incident['id']}/assignments", json={"responder_id": b}, headers=coord_headers
    )
    assert assign.status_code == 201
    again = (await client.get(f"/v1/incidents/{incident['id']}/recommendations", headers=coord_headers)).json()["items"]
    assert [i["id"] for i in again] == [c, far]
    await client.patch(f"/v1/incidents/{incident['id']}", json={"status": "cancelled"}, headers=coord_headers)


async def test_recommendations_expand_rings_until_candidates_are_found(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: object
) -> None:
    lon, lat = -97.0, 38.0
    (far,) = await fresh_responders(db, 1)
    await place(client, db, None, far, lon + 0.25, lat)  # ~22 km east
    incident = await create_incident(client, coord_headers, location=point(lon, lat), type="other")
    body = (await client.get(f"/v1/incidents/{incident['id']}/recommendations", headers=coord_headers)).json()
    assert [i["id"] for i in body["items"]] == [far]
    assert body["searched_radius_m"] > 20_000
    assert 21_000 < body["items"][0]["distance_m"] < 23_000
