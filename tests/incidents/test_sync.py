"""Offline-safe sync: a responder phone that was offline for an hour catches up exactly."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import DEMO_PASSWORD, bearer
from tests.incidents.helpers import create_incident, fresh_responders


async def _responder_user(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Any
) -> tuple[str, dict[str, str]]:
    (rid,) = await fresh_responders(db, 1)
    username = f"phone-{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/v1/users", json={"username": username, "password": DEMO_PASSWORD, "role": "responder"}, headers=admin_headers
    )
    assert r.status_code in (200, 201), r.text
    await db.execute("UPDATE responders SET user_id = $1 WHERE id = $2", uuid.UUID(r.json()["id"]), uuid.UUID(rid))
    tok = await client.post("/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD})
    return rid, bearer(tok.json()["access_token"])


async def _drain(
    client: httpx.AsyncClient, headers: dict[str, str], cursor: str | None, limit: int = 500
) -> tuple[str, dict[str, Any]]:
    seen: dict[str, Any] = {"incidents": {}, "assignments": {}, "messages": {}}
    pages = 0
    while True:
        params = {"limit": limit} | ({"since": cursor} if cursor else {})
        r = await client.get("/v1/sync", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        for kind in ("incidents", "assignments", "messages"):
            for item in body[kind]:
                seen[kind][str(item["id"])] = item
        cursor = body["cursor"]
        pages += 1
        if not body["has_more"]:
            return cursor, seen | {"pages": pages}  # type: ignore[return-value]


async def test_phone_offline_for_an_hour_catches_up_exactly(
    client: httpx.AsyncClient, coord_headers: dict[str, str], admin_headers: dict[str, str], db: Any
) -> None:
    rid, phone = await _responder_user(client, admin_headers, db)
    cursor, _ = await _drain(client, phone, None)
    incident = await create_incident(client, coord_headers, title="Sync: structure fire")
    other = await create_incident(client, coord_headers, title="Sync: not mine")
    assignment = (
        await client.post(
            f"/v1/incidents/{incident['id']}/assignments", json={"responder_id": rid}, headers=coord_headers
        )
    ).json()
    cursor, seen = await _drain(client, phone, cursor)
    assert set(seen["incidents"]) == {incident["id"]} and seen["assignments"][assignment["id"]]["status"] == "pending"

    # --- the phone goes offline; an hour of work happens meanwhile ---
    for i in range(3):
        await client.post(
            f"/v1/incidents/{incident['id']}/messages", json={"text": f"update {i}"}, headers=coord_headers
        )
    await client.patch(
        f"/v1/incidents/{incident['id']}", json={"priority": "P1", "description": "spreading"}, headers=coord_headers
    )
    await client.post(f"/v1/incidents/{other['id']}/messages", json={"text": "elsewhere"}, headers=coord_headers)
    # the phone accepted and wrote a message while offline; its retries replay (same key / same client id)
    key = {"Idempotency-Key": f"accept-{assignment['id']}"}
    acc1 = await client.post(f"/v1/assignments/{assignment['id']}/accept", headers={**phone, **key})
    acc2 = await client.post(f"/v1/assignments/{assignment['id']}/accept", headers={**phone, **key})
    assert acc1.status_code == acc2.status_code == 200 and acc1.json() == acc2.json()
    offline_msg = {"id": str(uuid.uuid4()), "text": "on my way, 10 min"}
    for _ in range(2):
        assert (
            await client.post(f"/v1/incidents/{incident['id']}/messages", json=offline_msg, headers=phone)
        ).status_code in (200, 201)

    # --- back online: one catch-up, in small pages ---
    cursor2, seen = await _drain(client, phone, cursor, limit=2)
    assert seen["pages"] > 1
    assert set(seen["incidents"]) == {incident["id"]}
    state = seen["incidents"][incident["id"]]
    assert state["priority"] == 1 and state["description"] == "spreading" and state["status"] == "en_route"
    assert seen["assignments"][assignment["id"]]["status"] == "accepted"
    texts = sorted(m["text"] for m in seen["messages"].values())
    assert texts == ["on my way, 10 min", "update 0", "update 1", "update 2"]
    assert offline_msg["id"] in {m["client_id"] for m in seen["messages"].values()}
    # nothing more for the phone
    _, seen = await _drain(client, phone, cursor2)
    # (the cursor may move past events outside the phone's scope, written by anyone meanwhile)
    assert not seen["incidents"] and not seen["messages"] and not seen["assignments"]
    # the coordinator's view (unrestricted) includes the other incident too
    _, staff = await _drain(client, coord_headers, cursor)
    assert {incident["id"], other["id"]} <= set(staff["incidents"])
    await client.patch(f"/v1/incidents/{incident['id']}", json={"status": "cancelled"}, headers=coord_headers)
    assert (await client.get("/v1/sync", params={"since": "garbage"}, headers=phone)).status_code == 422
