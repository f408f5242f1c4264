"""Incidents through the API: validation, transitions, roles and team scope, search, filters, exports,
idempotency and client ids."""

from __future__ import annotations

import csv
import io
import uuid

import httpx

from tests.conftest import bearer, login
from tests.incidents.helpers import CITY, create_incident, fresh_responders, point


async def test_create_validates_and_writes_nothing_on_bad_input(
    client: httpx.AsyncClient, coord_headers: dict[str, str], db: object
) -> None:
    title = f"bad-{uuid.uuid4().hex}"
    cases = [
        ({"type": "volcano"}, "type"),
        ({"priority": "P7"}, "priority"),
        ({"location": {"type": "Point", "coordinates": [200, 10]}}, "location.coordinates"),
        ({"location": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}}, "location"),
        ({"location": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "location.type"),
        ({"title": "   "}, "title"),
    ]
    for change, field in cases:
        body = {"type": "fire", "priority": 1, "title": title, "location": point(*CITY), **change}
        r = await client.post("/v1/incidents", json=body, headers=coord_headers)
        assert r.status_code == 422, (change, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"].startswith(field) for e in r.json()["errors"]), r.json()
    r = await client.post(
        "/v1/incidents",
        json={"type": "fire", "priority": 1, "title": title, "location": point(*CITY), "colour": "red"},
        headers=coord_headers,
    )
    assert r.status_code in (400, 422)
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE title = $1", title) == 0  # type: ignore[attr-defined]


async def test_priority_accepts_p_strings_and_polygons_are_located(
    client: httpx.AsyncClient, coord_headers: dict[str, str]
) -> None:
    lon, lat = CITY
    poly = {
        "type": "Polygon",
        "coordinates": [[[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]],
    }
    inc = await create_incident(client, coord_headers, priority="P3", location=poly, type="flood")
    assert inc["priority"] == 3 and inc["location"]["type"] == "Polygon" and inc["status"] == "reported"
    assert lon < inc["lon"] < lon + 0.01 and lat < inc["lat"] < lat + 0.01
    fetched = await client.get(f"/v1/incidents/{inc['id']}", headers=coord_headers)
    assert fetched.json()["id"] == inc["id"]


async def test_status_machine_through_the_api_and_timeline(
    client: httpx.AsyncClient, coord_headers: dict[str, str]
) -> None:
    inc = await create_incident(client, coord_headers)
    url = f"/v1/incidents/{inc['id']}"
    bad = await client.patch(url, json={"status": "closed"}, headers=coord_headers)
    assert bad.status_code == 409 and bad.json()["type"].endswith("/illegal-transition")
    assert bad.json()["from"] == "reported" and "acknowledged" in bad.json()["allowed"]
    ack = await client.patch(url, json={"status": "acknowledged", "note": "on it"}, headers=coord_headers)
    assert ack.status_code == 200 and ack.json()["acknowledged_at"]
    skip = await client.patch(url, json={"status": "on_scene"}, headers=coord_headers)
    assert skip.status_code == 200
    body = skip.json()
    assert body["dispatched_at"] == body["en_route_at"] == body["on_scene_at"]
    back = await client.patch(url, json={"status": "dispatched"}, headers=coord_headers)
    assert back.status_code == 409
    await client.patch(url, json={"status": "resolved"}, headers=coord_headers)
    closed = await client.patch(url, json={"status": "closed"}, headers=coord_headers)
    assert closed.json()["status"] == "closed" and closed.json()["closed_at"]
    cancel = await client.patch(url, json={"status": "cancelled"}, headers=coord_headers)
    assert cancel.status_code == 409
    edit = await client.patch(url, json={"title": "too late"}, headers=coord_headers)
    assert edit.status_code == 409
    timeline = (await client.get(f"{url}/timeline", headers=coord_headers)).json()["items"]
    kinds = [(e["kind"], e["body"].get("to")) for e in timeline]
    assert kinds == [
        ("created", None),
        ("status", "acknowledged"),
        ("status", "on_scene"),
        ("status", "resolved"),
        ("status", "closed"),
    ]
    assert all(e["actor"] == "coord" for e in timeline)
    assert timeline[1]["body"]["note"] == "on it"


async def test_roles_and_team_scope(
    client: httpx.AsyncClient,
    coord_headers: dict[str, str],
    admin_headers: dict[str, str],
    viewer_headers: dict[str, str],
    responder_headers: dict[str, str],
    db: object,
) -> None:
    fire = bearer(await login(client, "fire-coord"))
    teams = {r["name"]: r["id"] for r in (await client.get("/v1/teams", headers=admin_headers)).json()}
    ems_incident = await create_incident(client, admin_headers, team_id=teams["EMS"], title="EMS only")
    engine_incident = await create_incident(client, admin_headers, team_id=teams["Engine 1"], title="Engine one job")
    # viewer: no incident permission at all
    for method, path in (
        ("GET", "/v1/incidents"),
        ("GET", f"/v1/incidents/{ems_incident['id']}"),
        ("POST", "/v1/incidents"),
        ("GET", "/v1/reports/summary"),
        ("GET", "/v1/sync"),
        ("GET", "/v1/resources"),
    ):
        r = await client.request(method, path, headers=viewer_headers, json={} if method == "POST" else None)
        assert r.status_code == 403, (method, path, r.status_code)
    # fire coordinator: sees Fire subtree (Engine 1), not EMS
    assert (await client.get(f"/v1/incidents/{engine_incident['id']}", headers=fire)).status_code == 200
    assert (await client.get(f"/v1/incidents/{ems_incident['id']}", headers=fire)).status_code == 404
    assert (
        await client.patch(f"/v1/incidents/{ems_incident['id']}", json={"status": "acknowledged"}, headers=fire)
    ).status_code == 404
    listed = {i["id"] for i in (await client.get("/v1/incidents?limit=1000", headers=fire)).json()["items"]}
    assert engine_incident["id"] in listed and ems_incident["id"] not in listed
    r = await client.post(
        "/v1/incidents",
        json={"type": "fire", "priority": 1, "title": "x", "location": point(*CITY), "team_id": teams["EMS"]},
        headers=fire,
    )
    assert r.status_code == 403
    own = await create_incident(client, fire, title="fire coord default team")
    assert own["team_id"] == teams["Fire"]
    # responder: sees only incidents they are assigned to; cannot create; may change status only
    assert (await client.post("/v1/incidents", json={}, headers=responder_headers)).status_code == 403
    assert (await client.get(f"/v1/incidents/{engine_incident['id']}", headers=responder_headers)).status_code == 404
    me = (await client.get("/v1/me", headers=responder_headers)).json()
    rid = await db.fetchval("SELECT id FROM responders WHERE user_id = $1", uuid.UUID(me["id"]))  # type: ignore[attr-defined]
    await db.execute("UPDATE responders SET status = 'available' WHERE id = $1", rid)  # type: ignore[attr-defined]
    a = await client.post(
        f"/v1/incidents/{engine_incident['id']}/assignments", json={"responder_id": str(rid)}, headers=coord_headers
    )
    assert a.status_code == 201, a.text
    assert (await client.get(f"/v1/incidents/{engine_incident['id']}", headers=responder_headers)).status_code == 200
    listed = [i["id"] for i in (await client.get("/v1/incidents", headers=responder_headers)).json()["items"]]
    assert engine_incident["id"] in listed and ems_incident["id"] not in listed
    assert (
        await client.patch(f"/v1/incidents/{engine_incident['id']}", json={"title": "mine"}, headers=responder_headers)
    ).status_code == 403
    assert (
        await client.get(f"/v1/incidents/{engine_incident['id']}/recommendations", headers=responder_headers)
    ).status_code == 403
    # a responder cannot act on someone else's assignment, nor release their own
    other = (await fresh_responders(db, 1))[0]
    b = (
        await client.post(
            f"/v1/incidents/{engine_incident['id']}/assignments", json={"responder_id": other}, headers=coord_headers
        )
    ).json()
    assert (await client.post(f"/v1/assignments/{b['id']}/accept", headers=responder_headers)).status_code == 403
    assert (
        await client.post(f"/v1/assignments/{a.json()['id']}/release", headers=responder_headers)
    ).status_code == 403
    assert (await client.post(f"/v1/assignments/{a.json()['id']}/accept", headers=responder_headers)).status_code == 200
    msg = await client.post(
        f"/v1/incidents/{engine_incident['id']}/messages", json={"text": "responding"}, headers=responder_headers
    )
    assert msg.status_code == 201 and msg.json()["author"] == "responder"
    done = await client.patch(
        f"/v1/incidents/{engine_incident['id']}", json={"status": "cancelled"}, headers=coord_headers
    )
    assert done.status_code == 200
    assert await db.fetchval("SELECT status FROM responders WHERE id = $1", rid) == "available"  # type: ignore[attr-defined]
    await db.execute("UPDATE responders SET status = 'off_duty' WHERE id = $1", rid)  # type: ignore[attr-defined]


async def test_assignment_conflicts(client: httpx.AsyncClient, coord_headers: dict[str, str], db: object) -> None:
    inc = await create_incident(client, coord_headers)
    url = f"/v1/incidents/{inc['id']}/assignments"
    off_duty = await db.fetchval("SELECT id::text FROM responders WHERE status = 'off_duty' LIMIT 1")  # type: ignore[attr-defined]
    r = await client.post(url, json={"responder_id": off_duty}, headers=coord_headers)
    assert r.status_code == 409 and r.json()["unit_status"] == "off_duty"
    assert (await client.post(url, json={"responder_id": str(uuid.uuid4())}, headers=coord_headers)).status_code == 404
    assert (await client.post(url, json={}, headers=coord_headers)).status_code == 422
    rid = (await fresh_responders(db, 1))[0]
    first = await client.post(url, json={"responder_id": rid}, headers=coord_headers)
    assert first.status_code == 201
    assert (await client.get(f"/v1/incidents/{inc['id']}", headers=coord_headers)).json()["status"] == "dispatched"
    busy = await client.post(url, json={"responder_id": rid}, headers=coord_headers)
    assert busy.status_code == 409 and busy.json()["unit_status"] == "busy"
    aid = first.json()["id"]
    assert (await client.post(f"/v1/assignments/{aid}/decline", headers=coord_headers)).json()["status"] == "declined"
    assert (await client.post(f"/v1/assignments/{aid}/accept", headers=coord_headers)).status_code == 409
    assert (await client.post(f"/v1/assignments/{aid}/teleport", headers=coord_headers)).status_code == 404
    assert await db.fetchval("SELECT status FROM responders WHERE id = $1", uuid.UUID(rid)) == "available"  # type: ignore[attr-defined]
    # resources follow assignments too
    res = await client.post(
        "/v1/resources",
        json={"name": "Boat 3", "type": "boat", "capabilities": ["swiftwater"], "location": point(*CITY)},
        headers=coord_headers,
    )
    assert res.status_code == 201 and res.json()["location_source"] == "fixed"
    ra = await client.post(url, json={"resource_id": res.json()["id"]}, headers=coord_headers)
    assert ra.status_code == 201
    assert (await client.get(f"/v1/resources/{res.json()['id']}", headers=coord_headers)).json()["status"] == "in_use"
    assert (
        await client.patch(f"/v1/resources/{res.json()['id']}", json={"status": "maintenance"}, headers=coord_headers)
    ).status_code == 409
    await client.post(f"/v1/assignments/{ra.json()['id']}/release", headers=coord_headers)
    assert (await client.get(f"/v1/resources/{res.json()['id']}", headers=coord_headers)).json()[
        "status"
    ] == "available"


async def test_search_relevance_filters_and_pages(client: httpx.AsyncClient, coord_headers: dict[str, str]) -> None:
    tag = "kestrel" + "".join(chr(97 + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])
    d1 = await create_incident(
        client,
        coord_headers,
        title=f"Chemical leak {tag}",
        description="Chemical drums leaking chemical fumes near the plant",
        type="hazmat",
    )
    d2 = await create_incident(
        client, coord_headers, title=f"Warehouse fire {tag}", description="smoke, possible chemical storage inside"
    )
    d3 = await create_incident(
        client, coord_headers, title=f"Flooded basement {tag}", description="water rising", type="flood", priority=4
    )

    async def ids(**params: object) -> list[str]:
        r = await client.get("/v1/incidents", params=params, headers=coord_headers)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert await ids(q=f"{tag} chemical", sort="relevance") == [d1["id"], d2["id"]]
    assert await ids(q=f"{tag} chemical") == [d2["id"], d1["id"]]  # a search filters the newest-first list
    assert await ids(q=f"{tag} -chemical") == [d3["id"]]
    assert await ids(q=f'"flooded basement" {tag}') == [d3["id"]]
    assert await ids(q=f"{tag} chemicals leaking") == [d1["id"]]  # stemming
    assert await ids(q=tag, type="flood") == [d3["id"]]
    assert await ids(q=tag, priority="P4") == [d3["id"]]
    assert set(await ids(q=tag, status="reported")) == {d1["id"], d2["id"], d3["id"]}
    assert await ids(q=tag, status="closed") == []
    first = (
        await client.get(
            "/v1/incidents", params={"q": f"{tag} chemical", "limit": 1, "sort": "relevance"}, headers=coord_headers
        )
    ).json()
    assert [i["id"] for i in first["items"]] == [d1["id"]] and first["items"][0]["rank"] > 0
    second = (
        await client.get(
            "/v1/incidents",
            params={"q": f"{tag} chemical", "limit": 1, "sort": "relevance", "cursor": first["next_cursor"]},
            headers=coord_headers,
        )
    ).json()
    assert [i["id"] for i in second["items"]] == [d2["id"]] and second["next_cursor"] is None
    assert (await client.get("/v1/incidents", params={"status": "bogus"}, headers=coord_headers)).status_code == 422
    # exports
    gj = await client.get("/v1/incidents.geojson", params={"q": tag}, headers=coord_headers)
    assert gj.status_code == 200 and gj.headers["content-type"].startswith("application/geo+json")
    feats = gj.json()["features"]
    assert {f["id"] for f in feats} == {d1["id"], d2["id"], d3["id"]} and feats[0]["geometry"]["type"] == "Point"
    same = await client.get("/v1/incidents", params={"q": tag, "format": "geojson"}, headers=coord_headers)
    assert same.json()["type"] == "FeatureCollection"
    text = (await client.get("/v1/incidents.csv", params={"q": tag}, headers=coord_headers)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["id"] for r in rows} == {d1["id"], d2["id"], d3["id"]} and rows[0]["lon"]


async def test_hazard_filters(client: httpx.AsyncClient, coord_headers: dict[str, str], db: object) -> None:
    lon, lat = -93.5, 44.0
    hazard = await db.fetchval(  # type: ignore[attr-defined]
        "INSERT INTO hazards (kind, severity, title, geom, h3_res, status) VALUES ('flood', 'severe', 'River flood', "
        "ST_MakeEnvelope($1, $2, $3, $4, 4326), 9, 'active') RETURNING id",
        lon - 0.01,
        lat - 0.01,
        lon + 0.01,
        lat + 0.01,
    )
    inside = await create_incident(client, coord_headers, location=point(lon, lat), title="in the flood")
    outside = await create_incident(client, coord_headers, location=point(lon + 0.05, lat), title="dry")
    bbox = f"{lon - 0.1},{lat - 0.1},{lon + 0.1},{lat + 0.1}"
    got = (await client.get("/v1/incidents", params={"inside_hazard": str(hazard)}, headers=coord_headers)).json()[
        "items"
    ]
    assert [i["id"] for i in got] == [inside["id"]]
    got = (
        await client.get("/v1/incidents", params={"in_active_hazard": "true", "bbox": bbox}, headers=coord_headers)
    ).json()["items"]
    assert [i["id"] for i in got] == [inside["id"]]
    got = (await client.get("/v1/incidents", params={"bbox": bbox}, headers=coord_headers)).json()["items"]
    assert {i["id"] for i in got} == {inside["id"], outside["id"]}
    assert (
        await client.get("/v1/incidents", params={"inside_hazard": str(uuid.uuid4())}, headers=coord_headers)
    ).status_code == 404
    assert (await client.get("/v1/incidents", params={"bbox": "1,2,3"}, headers=coord_headers)).status_code == 422


async def test_idempotency_key_replays_and_refuses_a_different_body(
    client: httpx.AsyncClient, coord_headers: dict[str, str], admin_headers: dict[str, str], db: object
) -> None:
    title = f"idem-{uuid.uuid4().hex}"
    body = {"type": "medical", "priority": 2, "title": title, "location": point(*CITY)}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await client.post("/v1/incidents", json=body, headers={**coord_headers, **key})
    again = await client.post("/v1/incidents", json=body, headers={**coord_headers, **key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers.get("idempotent-replayed") == "true"
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE title = $1", title) == 1  # type: ignore[attr-defined]
    different = await client.post("/v1/incidents", json={**body, "priority": 1}, headers={**coord_headers, **key})
    assert different.status_code == 422 and different.json()["errors"][0]["field"] == "Idempotency-Key"
    # keys belong to their user
    other = await client.post("/v1/incidents", json=body, headers={**admin_headers, **key})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    # client-generated ids: a retry returns the stored incident / message
    cid = str(uuid.uuid4())
    made = await client.post("/v1/incidents", json={**body, "id": cid, "title": title + "-c"}, headers=coord_headers)
    retry = await client.post("/v1/incidents", json={**body, "id": cid, "title": title + "-c"}, headers=coord_headers)
    assert made.status_code == 201 and retry.status_code == 200 and retry.json()["id"] == cid
    mid = str(uuid.uuid4())
    m1 = await client.post(f"/v1/incidents/{cid}/messages", json={"id": mid, "text": "hello"}, headers=coord_headers)
    m2 = await client.post(f"/v1/incidents/{cid}/messages", json={"id": mid, "text": "hello"}, headers=coord_headers)
    assert m1.status_code == 201 and m2.status_code == 200 and m1.json() == m2.json()
    msgs = (await client.get(f"/v1/incidents/{cid}/messages", headers=coord_headers)).json()["items"]
    assert [m["text"] for m in msgs] == ["hello"]
    # a failed request stores no key: the same key works once the request is fixed
    bad_key = {"Idempotency-Key": uuid.uuid4().hex}
    bad = await client.post("/v1/incidents", json={**body, "type": "nope"}, headers={**coord_headers, **bad_key})
    assert bad.status_code == 422
    assert not await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", bad_key["Idempotency-Key"])  # type: ignore[attr-defined]
