"""The full life of an incident through the API against real PostgreSQL: create, recommend, assign,
accept, arrive (detected from the responder's posted positions), resolve, close, report."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Database, ServerProcess, bearer, eventually, login, start_server
from tests.incidents.helpers import create_incident, place, point

DWELL_S = 2


@pytest.fixture(scope="module")
def short_dwell_server(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose arrival dwell is 2 s, so the test need not wait the default 30 s."""
    env = {**database.env, "SITREP_ARRIVAL_DWELL_S": str(DWELL_S), "SITREP_ARRIVAL_CHECK_INTERVAL_S": "0.2"}
    srv = start_server(env, tmp_path_factory.mktemp("lifecycle-logs"))
    yield srv
    srv.stop()


@pytest.fixture
async def life_client(short_dwell_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=short_dwell_server.url, timeout=30) as c:
        yield c


async def test_full_life_of_an_incident(life_client: httpx.AsyncClient, database: Database, db: Any) -> None:
    client = life_client
    coord_headers = bearer(await login(client, "coord"))
    responder_headers = bearer(await login(client, "responder"))
    started = datetime.now(UTC) - timedelta(seconds=1)
    me = (await client.get("/v1/me", headers=responder_headers)).json()
    rid = str(await db.fetchval("SELECT id FROM responders WHERE user_id = $1", uuid.UUID(me["id"])))
    device = next(d for d in database.devices if d["responder_id"] == rid)
    await db.execute(
        "UPDATE responders SET status = 'available', skills = '{firefighting}' WHERE id = $1", uuid.UUID(rid)
    )
    # somewhere quiet, 600 m west of the incident
    lon, lat = -96.2, 41.3
    await place(client, db, device, rid, lon - 0.0072, lat)

    # create
    incident = await create_incident(
        client,
        coord_headers,
        type="fire",
        priority="P1",
        title="Barn fire",
        location=point(lon, lat),
        address="Rural Rd 5",
    )
    iid = incident["id"]
    # recommend
    rec = await client.get(f"/v1/incidents/{iid}/recommendations", headers=coord_headers)
    assert rec.status_code == 200, rec.text
    top = rec.json()["items"][0]
    assert top["id"] == rid and "has skill: firefighting" in top["reasons"] and 500 < top["distance_m"] < 700
    # assign
    a = await client.post(f"/v1/incidents/{iid}/assignments", json={"responder_id": rid}, headers=coord_headers)
    assert a.status_code == 201, a.text
    aid = a.json()["id"]
    assert (await client.get(f"/v1/incidents/{iid}", headers=coord_headers)).json()["status"] == "dispatched"
    assert await db.fetchval("SELECT status FROM responders WHERE id = $1", uuid.UUID(rid)) == "busy"
    # accept (the responder, on their phone)
    acc = await client.post(f"/v1/assignments/{aid}/accept", headers=responder_headers)
    assert acc.status_code == 200 and acc.json()["status"] == "accepted"
    fence = await db.fetchrow(
        "SELECT dwell_s, responder_ids, meta FROM geofences WHERE incident_id = $1 AND deleted_at IS NULL",
        uuid.UUID(iid),
    )
    assert fence is not None and json.loads(fence["meta"])["assignment_id"] == aid and fence["dwell_s"] == DWELL_S
    assert (await client.get(f"/v1/incidents/{iid}", headers=responder_headers)).json()["status"] == "en_route"
    # arrive: at the incident, and still there after the dwell (measured in fix time)
    await place(client, db, device, rid, lon + 0.0002, lat)
    await eventually(
        lambda: db.fetchval("SELECT inside_since IS NOT NULL FROM assignments WHERE id = $1", uuid.UUID(aid)),
        timeout=10,
    )
    assert (await client.get(f"/v1/assignments/{aid}", headers=coord_headers)).json()["status"] == "accepted"
    await asyncio.sleep(DWELL_S + 0.2)
    await place(client, db, device, rid, lon + 0.0001, lat + 0.0001)

    async def arrived() -> bool:
        r = await client.get(f"/v1/assignments/{aid}", headers=coord_headers)
        return bool(r.json()["status"] == "on_scene")

    await eventually(arrived, timeout=10)
    on_scene = (await client.get(f"/v1/incidents/{iid}", headers=coord_headers)).json()
    assert on_scene["status"] == "on_scene" and on_scene["on_scene_at"]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM geofences WHERE incident_id = $1 AND deleted_at IS NULL", uuid.UUID(iid)
        )
        == 0
    )
    # resolve and close
    res = await client.patch(
        f"/v1/incidents/{iid}", json={"status": "resolved", "note": "knocked down"}, headers=coord_headers
    )
    assert res.status_code == 200 and res.json()["resolved_at"]
    assert (await client.get(f"/v1/assignments/{aid}", headers=coord_headers)).json()["status"] == "released"
    assert await db.fetchval("SELECT status FROM responders WHERE id = $1", uuid.UUID(rid)) == "available"
    closed = await client.patch(f"/v1/incidents/{iid}", json={"status": "closed"}, headers=coord_headers)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"

    # report
    summary = (
        await client.get("/v1/reports/summary", params={"from": started.isoformat()}, headers=coord_headers)
    ).json()
    assert summary["by_status"]["closed"] >= 1 and summary["by_type"]["fire"] >= 1
    assert summary["times"]["arrive"]["count"] >= 1 and summary["times"]["dispatch"]["p90_min"] is not None
    assert summary["responders"]["assigned_hours"] > 0
    hexes = (
        await client.get("/v1/reports/hexbins", params={"res": 6, "from": started.isoformat()}, headers=coord_headers)
    ).json()
    assert sum(h["count"] for h in hexes["items"]) == summary["total"] and all(
        h["cell"].startswith("86") for h in hexes["items"]
    )
    aar = (await client.get(f"/v1/incidents/{iid}/after-action", headers=coord_headers)).json()
    kinds = [e["kind"] for e in aar["timeline"]]
    assert kinds[0] == "created" and "assignment.created" in kinds and "assignment.accepted" in kinds
    assert "assignment.on_scene" in kinds and "assignment.released" in kinds
    arrival = next(e for e in aar["timeline"] if e["kind"] == "assignment.on_scene")
    assert arrival["body"]["reason"].startswith("arrival")
    statuses = [e["body"]["to"] for e in aar["timeline"] if e["kind"] == "status"]
    assert statuses == ["dispatched", "en_route", "on_scene", "resolved", "closed"]
    assert all(v is not None for v in aar["durations_min"].values())
    text = (await client.get(f"/v1/incidents/{iid}/after-action", params={"format": "csv"}, headers=coord_headers)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["kind"] for r in rows] == kinds
    await db.execute("UPDATE responders SET status = 'off_duty' WHERE id = $1", uuid.UUID(rid))
