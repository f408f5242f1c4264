"""Responder notifications: a fix landing inside a hazard and a new assignment each tell the responder,
through `GET /v1/me/notifications`; nobody else sees them; marking read works."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import Database, ServerProcess, eventually, login
from tests.stream.helpers import open_viewer

from .conftest import move, square, token_for


async def _responder_user(fdb: Any, fence_db: Database) -> tuple[str, dict[str, str]]:
    rid = str(
        await fdb.fetchval(
            "SELECT r.id FROM responders r JOIN users u ON u.id = r.user_id WHERE u.username = 'responder'"
        )
    )
    device = next(d for d in fence_db.devices if d["responder_id"] == rid)
    return rid, device


async def _mine(fc: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = await fc.get("/v1/me/notifications", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_entering_a_hazard_notifies_the_responder_only(
    fc: httpx.AsyncClient, fence_db: Database, fdb: Any, admin: dict[str, str]
) -> None:
    rid, device = await _responder_user(fdb, fence_db)
    me = await token_for(fc, "responder")
    lon, lat = -96.5, 36.5
    r = await fc.post(
        "/v1/hazards",
        json={"kind": "flood", "geometry": square(lon, lat), "title": "Flood Warning", "severity": "severe"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    hz = r.json()
    await move(fc, device, lon - 0.05, lat)
    await move(fc, device, lon, lat)

    async def entered() -> list[dict[str, Any]]:
        return [n for n in await _mine(fc, me) if n["ref_id"] == hz["id"]]

    notes = await eventually(entered, timeout=15)
    assert len(notes) == 1
    n = notes[0]
    assert n["kind"] == "hazard_enter" and n["ref_type"] == "hazard" and n["responder_id"] == rid
    assert n["title"] == "You are inside: Flood Warning (Severe)" and n["read_at"] is None
    # stored in the evaluator's transaction, tied to the fence event
    assert (
        await fdb.fetchval(
            "SELECT count(*) FROM fence_events WHERE fence_id = $1 AND detect = 'enter' AND responder_id = $2::uuid",
            hz["id"],
            rid,
        )
        == 1
    )

    # staff without a responder record: empty list; the coordinator cannot mark it read either
    coord = await token_for(fc, "coord")
    assert await _mine(fc, coord) == []
    assert (await fc.post(f"/v1/me/notifications/{n['id']}/read", headers=coord)).status_code == 404

    # mark read; the unread filter drops it
    r = await fc.post(f"/v1/me/notifications/{n['id']}/read", headers=me)
    assert r.status_code == 200, r.text
    assert r.json()["read_at"] is not None
    assert all(x["id"] != n["id"] for x in await _mine(fc, me, unread="true"))
    assert any(x["id"] == n["id"] and x["read_at"] for x in await _mine(fc, me))

    # leaving tells too
    await move(fc, device, lon + 0.2, lat)

    async def left() -> bool:
        return any(x["kind"] == "hazard_exit" and x["ref_id"] == hz["id"] for x in await _mine(fc, me))

    await eventually(left, timeout=15)


async def test_an_assignment_notifies_its_responder_and_pages(
    fc: httpx.AsyncClient, fence_db: Database, fdb: Any, device: dict[str, str]
) -> None:
    rid, _ = await _responder_user(fdb, fence_db)
    await fdb.execute("UPDATE responders SET status = 'available' WHERE id = $1::uuid", rid)
    coord = await token_for(fc, "coord")
    me = await token_for(fc, "responder")
    body = {
        "type": "fire",
        "priority": "P2",
        "title": "Barn fire",
        "location": {"type": "Point", "coordinates": [-91.6, 41.9]},
    }
    inc = (await fc.post("/v1/incidents", json=body, headers=coord)).json()
    r = await fc.post(f"/v1/incidents/{inc['id']}/assignments", json={"responder_id": rid}, headers=coord)
    assert r.status_code == 201, r.text
    assignment = r.json()
    notes = [n for n in await _mine(fc, me) if n["kind"] == "assignment"]
    assert notes and notes[0]["ref_id"] == assignment["id"] and notes[0]["title"] == "New assignment: Barn fire"

    # another responder's assignment is not mine
    other = device["responder_id"]
    await fdb.execute("UPDATE responders SET status = 'available' WHERE id = $1::uuid", other)
    r = await fc.post(f"/v1/incidents/{inc['id']}/assignments", json={"responder_id": other}, headers=coord)
    assert r.status_code == 201, r.text
    theirs = r.json()["id"]
    assert all(n["ref_id"] != theirs for n in await _mine(fc, me))
    assert (
        await fdb.fetchval(
            "SELECT count(*) FROM responder_notifications WHERE ref_id = $1 AND responder_id = $2::uuid", theirs, other
        )
        == 1
    )
    # not another responder's to mark
    their_note = await fdb.fetchval("SELECT id::text FROM responder_notifications WHERE ref_id = $1", theirs)
    assert (await fc.post(f"/v1/me/notifications/{their_note}/read", headers=me)).status_code == 404

    # paging: limit 1 then the cursor gives the next, no overlap
    r = await fc.get("/v1/me/notifications", params={"limit": 1}, headers=me)
    page1 = r.json()
    assert len(page1["items"]) == 1 and page1["next_cursor"]
    r = await fc.get("/v1/me/notifications", params={"limit": 1, "cursor": page1["next_cursor"]}, headers=me)
    assert r.status_code == 200 and r.json()["items"][0]["id"] != page1["items"][0]["id"]
    assert (await fc.get("/v1/me/notifications", params={"cursor": "zz"}, headers=me)).status_code == 422
    # walking every page ends with a page that says there is no next one (no empty trailing page)
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await fc.get("/v1/me/notifications", params=params, headers=me)).json()
        assert page["items"], "a next_cursor never leads to an empty page"
        seen += [n["id"] for n in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) == len(await _mine(fc, me, limit=200))


async def test_a_notification_streams_to_its_responder_and_staff_only(
    fc: httpx.AsyncClient, fence_server: ServerProcess, fence_db: Database, fdb: Any, admin: dict[str, str]
) -> None:
    _rid, device = await _responder_user(fdb, fence_db)
    viewers = {}
    for who in ("responder", "coord", "viewer"):
        viewers[who] = await open_viewer(fence_server.ws_url, await login(fc, who))
        snap = await viewers[who].subscribe(topics=["alerts"])
        assert snap["type"] == "snapshot", snap
    try:
        lon, lat = -95.5, 35.5
        r = await fc.post(
            "/v1/hazards",
            json={"kind": "fire", "geometry": square(lon, lat), "title": "Grass Fire", "severity": "extreme"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        hazard_id = r.json()["id"]
        await move(fc, device, lon - 0.05, lat)
        await move(fc, device, lon, lat)

        def mine(m: dict[str, Any]) -> bool:
            return m.get("type") == "delta" and any(
                it["topic"] == "alerts"
                and it["data"].get("ref_id") == hazard_id
                and it["data"].get("kind") == "hazard_enter"
                for it in m["items"]
            )

        await viewers["responder"].next(mine, timeout=15)
        await viewers["coord"].next(mine, timeout=5)
        # The public viewer never gets personal notifications (give the tick time to pass).
        await asyncio.sleep(1.5)
        with pytest.raises(AssertionError):
            await viewers["viewer"].next(mine, timeout=1)
    finally:
        for v in viewers.values():
            await v.ws.close()
