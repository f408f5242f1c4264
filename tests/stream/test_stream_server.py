"""The stream against the real server: snapshot, deltas from real ingest, role scoping, bad
input, expired tokens and the SSE fallback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import JWT_SECRET, Database, ServerProcess, login
from tests.incidents.helpers import create_incident
from tests.positions.helpers import device_headers, fix, new_device

from .helpers import open_viewer

CITY_BBOX = [-91.80, 41.90, -91.55, 42.06]


async def test_snapshot_has_every_latest_position_in_the_area(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    v = await open_viewer(server.ws_url, await login(client, "coord"))
    try:
        snap = await v.subscribe(topics=["positions", "incidents", "hazards"])
        assert snap["type"] == "snapshot" and snap["reset"] is False and snap["epoch"]
        keys = {i["key"] for i in snap["items"] if i["topic"] == "positions"}
        assert {d["responder_id"] for d in database.devices} <= keys
        assert sum(i["topic"] == "incidents" for i in snap["items"]) >= 1
        item = next(i for i in snap["items"] if i["topic"] == "positions")
        assert {"lon", "lat", "callsign", "fix_time"} <= set(item["data"]) and item["accepted_at"] > 0
        assert "bbox" not in snap  # the whole map
        # A small box holds only the responders inside the area it follows: the asked box widened to
        # its grid (each side by less than 1/8 of the longer side), which the snapshot names.
        # (Use where it is now: other tests in the session move responders.)
        d = database.devices[0]
        now = next(i["data"] for i in snap["items"] if i["key"] == d["responder_id"])
        lon, lat = now["lon"], now["lat"]
        asked = [lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002]
        small = await v.subscribe(id="small", topics=["positions"], bbox=asked)
        x0, y0, x1, y1 = small["bbox"]
        assert x0 <= asked[0] and y0 <= asked[1] and x1 >= asked[2] and y1 >= asked[3]
        assert max(asked[0] - x0, asked[1] - y0, x1 - asked[2], y1 - asked[3]) < 0.004 / 8
        inside = [i["data"] for i in small["items"]]
        assert d["responder_id"] in {x["id"] for x in inside}
        assert all(x0 <= x["lon"] <= x1 and y0 <= x["lat"] <= y1 for x in inside)
        everywhere = {i["key"]: i["data"] for i in snap["items"] if i["topic"] == "positions"}
        assert {x["id"] for x in inside} == {
            k for k, p in everywhere.items() if x0 <= p["lon"] <= x1 and y0 <= p["lat"] <= y1
        }
    finally:
        await v.ws.close()


async def test_ingested_fix_arrives_as_delta_with_newest_state_and_accepted_at(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    v = await open_viewer(server.ws_url, await login(client, "coord"))
    try:
        await v.subscribe(topics=["positions"], bbox=CITY_BBOX)
        device = database.devices[3]
        t0 = time.time()
        # Three fixes in one batch: coalescing leaves only the newest for this responder.
        fixes = [fix(when=None, lon=-91.66 + k * 0.001, lat=41.98) for k in range(3)]
        for k, f in enumerate(fixes):
            f["fix_time"] = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(time.time() - 3 + k))}.{k:03d}Z"
        r = await client.post("/v1/positions", json=fixes, headers=device_headers(device))
        assert r.status_code == 200, r.text
        frame, item = await v.item("positions", device["responder_id"])
        assert item["data"]["lon"] == pytest.approx(-91.658)
        assert sum(1 for i in frame["items"] if i["key"] == device["responder_id"]) == 1
        assert t0 - 1 <= item["accepted_at"] <= frame["sent_at"]
        assert frame["seq"] > 0 and frame["epoch"]
        # A responder of the box that moves out of it: that one fix reaches the subscription (its last
        # update there, as the worker knows where it was), the next one outside does not.
        other = database.devices[4]
        r = await client.post("/v1/positions", json=[fix(lon=-90.0, lat=41.98)], headers=device_headers(other))
        assert r.status_code == 200, r.text
        _, left = await v.item("positions", other["responder_id"])
        assert left["data"]["lon"] == -90.0
        v.messages.clear()
        r = await client.post("/v1/positions", json=[fix(lon=-89.99, lat=41.98)], headers=device_headers(other))
        assert r.status_code == 200, r.text
        with pytest.raises(AssertionError):
            await v.item("positions", other["responder_id"], timeout=0.8)
    finally:
        await v.ws.close()


async def test_viewer_role_sees_public_topics_only(server: ServerProcess, client: httpx.AsyncClient) -> None:
    v = await open_viewer(server.ws_url, await login(client, "viewer"))
    try:
        err = await v.subscribe(topics=["positions", "hazards"])
        assert err["type"] == "error" and err["code"] == "forbidden_topic" and err["id"] == "s1"
        ok = await v.subscribe(id="s2", topics=["hazards", "alerts"])
        assert ok["type"] == "snapshot"
        assert all(i["data"].get("is_public", True) for i in ok["items"])
    finally:
        await v.ws.close()


async def test_responder_sees_only_its_team(
    server: ServerProcess, client: httpx.AsyncClient, database: Database, db: Any
) -> None:
    token = await login(client, "responder")
    claims = jwt.decode(token, options={"verify_signature": False})
    team = claims["team"]
    team_of = {str(r["id"]): str(r["team_id"]) for r in await db.fetch("SELECT id, team_id FROM responders")}
    v = await open_viewer(server.ws_url, token)
    try:
        snap = await v.subscribe(topics=["positions"])
        seen = {i["key"] for i in snap["items"]}
        assert seen and all(team_of[k] == team or k == claims.get("rsp") for k in seen)
        mine = next(d for d in database.devices if team_of[d["responder_id"]] == team)
        other = next(
            d for d in database.devices if team_of[d["responder_id"]] != team and d["responder_id"] != claims.get("rsp")
        )
        await client.post("/v1/positions", json=[fix(lon=-91.67, lat=41.97)], headers=device_headers(other))
        await client.post("/v1/positions", json=[fix(lon=-91.67, lat=41.97)], headers=device_headers(mine))
        frame, _ = await v.item("positions", mine["responder_id"])
        assert other["responder_id"] not in {i["key"] for i in frame["items"]}
        with pytest.raises(AssertionError):
            await v.item("positions", other["responder_id"], timeout=0.6)
    finally:
        await v.ws.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{oops", "bad_json"),
        ('{"type":"teleport"}', "unknown_type"),
        ('{"type":"subscribe","id":"b","topics":["positions"],"bbox":[-200,0,0,1]}', "invalid_area"),
        ('{"type":"subscribe","id":"b","topics":["positions"],"bbox":[-180,-90,180,90]}', "area_too_large"),
        ('{"type":"unsubscribe","id":"nope"}', "unknown_subscription"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_usable(
    server: ServerProcess, client: httpx.AsyncClient, raw: str, code: str
) -> None:
    v = await open_viewer(server.ws_url, await login(client, "coord"))
    try:
        await v.send(raw)
        err = await v.of_type("error")
        assert err["code"] == code and err["message"]
        await v.send({"type": "ping", "id": "p1"})
        pong = await v.of_type("pong")
        assert pong["id"] == "p1" and "seq" in pong
    finally:
        await v.ws.close()


async def test_expired_or_missing_token_closes_with_4401(server: ServerProcess, client: httpx.AsyncClient) -> None:
    me = (await client.get("/v1/me", headers={"Authorization": f"Bearer {await login(client, 'coord')}"})).json()
    expired = jwt.encode(
        {"sub": me["id"], "role": "coordinator", "typ": "access", "exp": int(time.time()) - 5}, JWT_SECRET, "HS256"
    )
    for url in (f"{server.ws_url}/v1/stream?access_token={expired}", f"{server.ws_url}/v1/stream"):
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    # The query-string token works for browsers.
    async with connect(f"{server.ws_url}/v1/stream?access_token={await login(client, 'coord')}") as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"


async def test_expired_token_reason_is_given(server: ServerProcess, client: httpx.AsyncClient) -> None:
    expired = jwt.encode(
        {"sub": str(uuid.uuid4()), "role": "admin", "typ": "access", "exp": int(time.time()) - 5}, JWT_SECRET, "HS256"
    )
    async with connect(f"{server.ws_url}/v1/stream", additional_headers={"Authorization": f"Bearer {expired}"}) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401 and "expired" in info.value.rcvd.reason


class SSEReader:
    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next event that carries data."""

        async def read() -> dict[str, str]:
            current: dict[str, str] = {}
            async for line in self.lines:
                if not line:
                    if "data" in current:
                        return current
                    current = {}
                    continue
                field, _, value = line.partition(": ")
                current[field] = value
            raise AssertionError("stream ended")

        return await asyncio.wait_for(read(), timeout)


async def test_sse_sends_snapshot_then_deltas_and_resumes_with_last_event_id(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    headers = {"Authorization": f"Bearer {await login(client, 'coord')}"}
    bbox = ",".join(str(x) for x in CITY_BBOX)
    device = database.devices[7]
    async with client.stream("GET", f"/v1/stream/sse?topics=positions&bbox={bbox}", headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = SSEReader(r)
        snap = await events.next()
        assert snap["event"] == "snapshot" and json.loads(snap["data"])["items"]
        x0, y0, x1, y1 = json.loads(snap["data"])["bbox"]  # the asked box widened to its grid, as on a socket
        assert x0 <= CITY_BBOX[0] and y0 <= CITY_BBOX[1] and x1 >= CITY_BBOX[2] and y1 >= CITY_BBOX[3]
        await client.post("/v1/positions", json=[fix(lon=-91.7, lat=41.99)], headers=device_headers(device))
        delta = await events.next()
        while delta["event"] != "delta":
            delta = await events.next()
        assert device["responder_id"] in {i["key"] for i in json.loads(delta["data"])["items"]}
        last_id = delta["id"]
    # Reconnect with Last-Event-ID: replay of what came after (nothing or more), not a snapshot.
    await client.post("/v1/positions", json=[fix(lon=-91.71, lat=41.99)], headers=device_headers(device))
    await asyncio.sleep(0.3)
    async with client.stream(
        "GET", f"/v1/stream/sse?topics=positions&bbox={bbox}", headers={**headers, "Last-Event-ID": last_id}
    ) as r:
        events = SSEReader(r)
        first = await events.next()
        assert json.loads(first["data"])["type"] == "resumed"
        replayed = await events.next()
        assert replayed["event"] == "delta" and device["responder_id"] in replayed["data"]


async def test_sse_refuses_forbidden_topic_and_bad_bbox(server: ServerProcess, client: httpx.AsyncClient) -> None:
    viewer = {"Authorization": f"Bearer {await login(client, 'viewer')}"}
    r = await client.get("/v1/stream/sse?topics=positions", headers=viewer)
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/v1/stream/sse?topics=hazards&bbox=1,2,3", headers=viewer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "bbox"
    r = await client.get("/v1/stream/sse?topics=hazards")
    assert r.status_code == 401


async def test_assignment_and_release_recolour_the_responder_without_a_new_fix(
    server: ServerProcess, client: httpx.AsyncClient, admin_headers: dict[str, str], coord_headers: dict[str, str]
) -> None:
    """Busy/available follows assignments on the map at once: a coordinator never sends a second unit
    because the first one's marker still looked free."""
    device = await new_device(client, admin_headers)
    rid = device["responder_id"]
    placed = fix(lon=-91.70, lat=41.99)
    assert (await client.post("/v1/positions", json=[placed], headers=device_headers(device))).status_code == 200
    v = await open_viewer(server.ws_url, await login(client, "coord"))
    try:
        snap = await v.subscribe(topics=["positions"], bbox=CITY_BBOX)
        assert next(i for i in snap["items"] if i["key"] == rid)["data"]["status"] == "available"
        incident = await create_incident(client, coord_headers, title="stream recolour")
        a = await client.post(
            f"/v1/incidents/{incident['id']}/assignments", json={"responder_id": rid}, headers=coord_headers
        )
        assert a.status_code == 201, a.text
        _, busy = await v.item("positions", rid, lambda d: d["status"] == "busy")
        assert busy["data"]["lon"] == pytest.approx(placed["lon"]) and busy["data"]["fix_time"] == placed["fix_time"]
        r = await client.post(f"/v1/assignments/{a.json()['id']}/release", headers=coord_headers)
        assert r.status_code == 200, r.text
        await v.item("positions", rid, lambda d: d["status"] == "available")
        # A responder with no position yet has no marker: a status change sends nothing for it.
        unplaced = await new_device(client, admin_headers)
        r = await client.patch(
            f"/v1/responders/{unplaced['responder_id']}", json={"status": "off_duty"}, headers=admin_headers
        )
        assert r.status_code == 200, r.text
        with pytest.raises(AssertionError):
            await v.item("positions", unplaced["responder_id"], timeout=0.8)
    finally:
        await v.ws.close()


async def test_viewer_without_compression_gets_the_same_stream(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    """Without permessage-deflate, frames are written as one shared byte string per frame."""
    v = await open_viewer(server.ws_url, await login(client, "coord"), compression=None)
    try:
        assert not v.ws.protocol.extensions
        snap = await v.subscribe(topics=["positions"], bbox=CITY_BBOX, encoding="compact")
        assert snap["type"] == "snapshot" and snap["positions"]
        device = database.devices[5]
        r = await client.post("/v1/positions", json=[fix(lon=-91.651, lat=41.981)], headers=device_headers(device))
        assert r.status_code == 200, r.text
        frame = await v.next(
            lambda m: (
                m.get("type") == "delta"
                and any(v.handles.get(p[0]) == device["responder_id"] for p in m.get("positions", []))
            )
        )
        pos = next(p for p in frame["positions"] if v.handles[p[0]] == device["responder_id"])
        assert (pos[1], pos[2]) == (-91.651, 41.981)
        pong = await v.next(lambda m: m.get("type") == "pong") if await v.send({"type": "ping"}) is None else None
        assert pong is not None and pong["seq"] >= frame["seq"]
    finally:
        await v.ws.close()


async def test_nearly_equal_boxes_share_one_group_and_the_gauge_counts_groups(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    """Two views of the same place a few metres apart follow the same widened area: one group, one
    frame per tick for both (``sitrep_stream_groups``); a view elsewhere is a group of its own."""

    async def groups() -> float:
        text = (await client.get("/metrics")).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("sitrep_stream_groups"))

    v = await open_viewer(server.ws_url, await login(client, "coord"))
    try:
        before = await groups()
        a = await v.subscribe(id="a", topics=["positions"], bbox=[-91.71, 41.95, -91.61, 42.03])
        assert await groups() == before + 1
        b = await v.subscribe(id="b", topics=["positions"], bbox=[-91.7099, 41.9501, -91.6101, 42.0299])
        assert b["bbox"] == a["bbox"] and await groups() == before + 1
        c = await v.subscribe(id="c", topics=["positions"], bbox=[-93.71, 40.95, -93.61, 41.03])
        assert c["bbox"] != a["bbox"] and await groups() == before + 2
        await v.send({"type": "unsubscribe", "id": "a"})
        await v.of_type("unsubscribed")
        assert await groups() == before + 2  # "b" still follows that area
        await v.send({"type": "unsubscribe", "id": "b"})
        await v.of_type("unsubscribed")
        assert await groups() == before + 1
    finally:
        await v.ws.close()
