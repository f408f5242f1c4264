"""Responders walking through hazards and geofences via the real positions API: events stored, on
the stream and delivered as signed webhooks; dwell, hysteresis, moving, deleting and expiring fences."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from server.outbox.webhook import verify
from tests.conftest import ServerProcess, eventually
from tests.stream.helpers import open_viewer

from .conftest import events_of, move, square
from .receiver import Receiver


async def _hazard(fc: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await fc.post("/v1/hazards", json={"kind": "flood", **body}, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _webhook(fc: httpx.AsyncClient, admin: dict[str, str], url: str, **flt: Any) -> dict[str, Any]:
    r = await fc.post("/v1/webhooks", json={"url": url, "filter": flt}, headers=admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _detects(fc: httpx.AsyncClient, admin: dict[str, str], rid: str, fence: str) -> list[str]:
    return [e["detect"] for e in await events_of(fc, admin, responder=rid, fence=fence)]


async def test_walking_into_a_hazard_stores_streams_and_signs_an_enter(
    fc: httpx.AsyncClient,
    fence_server: ServerProcess,
    admin: dict[str, str],
    device: dict[str, str],
    receiver: Receiver,
) -> None:
    lon, lat = -95.0, 35.0
    hz = await _hazard(fc, admin, geometry=square(lon, lat), title="Creek flood", severity="severe")
    hook = await _webhook(fc, admin, receiver.url, fences=[hz["id"]])
    token = admin["Authorization"].split()[1]
    viewer = await open_viewer(fence_server.ws_url, token)
    await viewer.subscribe(topics=["fence_events"])
    rid = device["responder_id"]
    await move(fc, device, lon - 0.05, lat)
    await move(fc, device, lon, lat)

    enter = await eventually(
        lambda: _first(
            events_of(
                fc,
                admin,
                responder=rid,
                fence=hz["id"],
            ),
            "enter",
        ),
        timeout=10,
    )
    assert enter["id"] == rid and enter["key"] == "responders" and enter["hazard"] == hz["id"]
    assert enter["fence"]["kind"] == "hazard" and enter["meta"]["kind"] == "flood" and enter["late"] is False
    assert enter["object"] == {"type": "Point", "coordinates": [lon, lat]}
    assert enter["fix_time"] <= enter["time"]

    _, item = await viewer.item("fence_events", str(enter["event_id"]), timeout=10)
    assert item["data"]["detect"] == "enter" and item["data"]["id"] == rid
    await viewer.ws.close()

    got = await eventually(lambda: receiver.ok("/hook"), timeout=10)
    req = got[0]
    assert verify(hook["secret"], req.headers, req.body)
    assert req.json["detect"] == "enter" and req.json["event_id"] == enter["event_id"]
    assert req.headers["webhook-id"].startswith("msg_")
    inside = await fc.get(f"/v1/hazards/{hz['id']}/responders", headers=admin)
    assert [x["responder_id"] for x in inside.json()] == [rid]
    mine = await fc.get(f"/v1/responders/{rid}/hazards", headers=admin)
    assert [x["hazard"]["id"] for x in mine.json()] == [hz["id"]]

    await move(fc, device, lon + 0.05, lat)
    await eventually(lambda: _first(events_of(fc, admin, responder=rid, fence=hz["id"]), "exit"), timeout=10)
    assert (await fc.get(f"/v1/hazards/{hz['id']}/responders", headers=admin)).json() == []


async def _first(coro: Any, detect: str) -> dict[str, Any] | None:
    for e in await coro:
        if e["detect"] == detect:
            return dict(e)
    return None


async def test_dwell_delays_enter_and_hysteresis_delays_exit(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str]
) -> None:
    lon, lat = -95.2, 35.2
    r = await fc.post(
        "/v1/geofences",
        json={
            "name": "yard",
            "geometry": square(lon, lat),
            "detect": ["enter", "exit", "dwell"],
            "dwell_s": 20,
            "hysteresis_m": 300,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    fid, rid = r.json()["id"], device["responder_id"]
    await move(fc, device, lon, lat, ago_s=60)  # inside, dwell starts
    await move(fc, device, lon, lat + 0.001, ago_s=50)  # 10 s in: not yet
    await asyncio.sleep(1.0)
    assert await _detects(fc, admin, rid, fid) == []
    await move(fc, device, lon, lat + 0.002, ago_s=35)  # 25 s in: enter + dwell
    await eventually(lambda: _has(fc, admin, rid, fid, ["enter", "dwell"]), timeout=10)
    # 0.01° ≈ 1.1 km half-width; 100 m outside the edge is within the 300 m hysteresis band
    await move(fc, device, lon + 0.01 + 0.0012, lat, ago_s=30)
    await asyncio.sleep(1.0)
    assert "exit" not in await _detects(fc, admin, rid, fid)
    await move(fc, device, lon + 0.01 + 0.006, lat, ago_s=20)  # ~500 m outside: exit
    await eventually(lambda: _has(fc, admin, rid, fid, ["enter", "dwell", "exit"]), timeout=10)


async def _has(fc: httpx.AsyncClient, admin: dict[str, str], rid: str, fid: str, want: list[str]) -> bool:
    return await _detects(fc, admin, rid, fid) == want


async def test_moving_a_hazard_onto_a_responder_enters_and_deleting_exits(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str]
) -> None:
    lon, lat = -95.4, 35.4
    rid = device["responder_id"]
    await move(fc, device, lon, lat)
    hz = await _hazard(fc, admin, geometry=square(lon + 0.1, lat))
    await asyncio.sleep(1.0)
    assert await _detects(fc, admin, rid, hz["id"]) == []
    r = await fc.patch(f"/v1/hazards/{hz['id']}", json={"geometry": square(lon, lat)}, headers=admin)
    assert r.status_code == 200
    await eventually(lambda: _has(fc, admin, rid, hz["id"], ["enter"]), timeout=10)
    ev = (await events_of(fc, admin, responder=rid, fence=hz["id"]))[0]
    assert ev["reason"] == "fence_moved" and ev["command"] == "sethook"
    assert (await fc.delete(f"/v1/hazards/{hz['id']}", headers=admin)).status_code == 204
    await eventually(lambda: _has(fc, admin, rid, hz["id"], ["enter", "exit"]), timeout=10)
    ev = (await events_of(fc, admin, responder=rid, fence=hz["id"]))[1]
    assert (
        ev["reason"] == "fence_deleted"
        and ev["group"] == (await events_of(fc, admin, responder=rid, fence=hz["id"]))[0]["group"]
    )


async def test_an_expiring_hazard_exits_everyone_and_ends(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str], fdb: Any
) -> None:
    lon, lat = -95.6, 35.6
    rid = device["responder_id"]
    until = datetime.now(UTC) + timedelta(seconds=4)
    hz = await _hazard(fc, admin, geometry=square(lon, lat), valid_until=until.isoformat())
    await move(fc, device, lon, lat)
    await eventually(lambda: _has(fc, admin, rid, hz["id"], ["enter"]), timeout=10)
    await eventually(lambda: _has(fc, admin, rid, hz["id"], ["enter", "exit"]), timeout=15)
    ev = (await events_of(fc, admin, responder=rid, fence=hz["id"]))[1]
    assert ev["reason"] == "fence_expired"
    await eventually(lambda: _status(fdb, hz["id"]), timeout=5)


async def _status(fdb: Any, hid: str) -> bool:
    return bool(await fdb.fetchval("SELECT status = 'ended' FROM hazards WHERE id = $1", hid))


async def test_geofence_for_one_team_ignores_others(
    fc: httpx.AsyncClient, admin: dict[str, str], device: dict[str, str], fdb: Any
) -> None:
    lon, lat = -95.8, 35.8
    rid = device["responder_id"]
    other_team = await fdb.fetchval(
        "SELECT id FROM teams WHERE id IS DISTINCT FROM (SELECT team_id FROM responders WHERE id = $1) LIMIT 1", rid
    )
    r = await fc.post(
        "/v1/geofences",
        json={"name": "team only", "geometry": square(lon, lat), "team_ids": [str(other_team)]},
        headers=admin,
    )
    fid = r.json()["id"]
    assert r.json()["applies_to_all"] is False
    await move(fc, device, lon, lat)
    await asyncio.sleep(1.5)
    assert await _detects(fc, admin, rid, fid) == []
