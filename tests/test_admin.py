"""Users, teams, devices and responders administration; the role × endpoint matrix; audit rows."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import DEMO_PASSWORD, bearer, eventually, login

ROLES = ["admin", "coord", "viewer", "responder"]

# (method, path, body, roles allowed (others get 403))
MATRIX = [
    ("GET", "/v1/users", None, {"admin", "coord"}),
    ("POST", "/v1/users", {"username": "m-{u}", "password": "long-enough-pw", "role": "viewer"}, {"admin"}),
    ("GET", "/v1/teams", None, {"admin", "coord", "viewer", "responder"}),
    ("POST", "/v1/teams", {"name": "Matrix {u}"}, {"admin", "coord"}),
    ("GET", "/v1/devices", None, {"admin", "coord"}),
    ("POST", "/v1/responders", {"callsign": "MX-{u}"}, {"admin", "coord"}),
    ("GET", "/v1/me", None, {"admin", "coord", "viewer", "responder"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX)
@pytest.mark.parametrize("who", ROLES)
async def test_role_matrix(
    client: httpx.AsyncClient, who: str, method: str, path: str, body: dict | None, allowed: set[str]
) -> None:
    headers = bearer(await login(client, who))
    payload = None
    if body is not None:
        u = uuid.uuid4().hex[:8]
        payload = {k: v.format(u=u) if isinstance(v, str) else v for k, v in body.items()}
    r = await client.request(method, path, json=payload, headers=headers)
    if who in allowed:
        assert r.status_code in (200, 201), (who, path, r.text)
    else:
        assert r.status_code == 403, (who, path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_anonymous_gets_401(client: httpx.AsyncClient) -> None:
    for path in ("/v1/users", "/v1/teams", "/v1/devices", "/v1/me"):
        r = await client.get(path)
        assert r.status_code == 401, path


async def test_user_lifecycle_writes_audit_rows(client: httpx.AsyncClient, admin_headers: dict, db) -> None:  # type: ignore[no-untyped-def]
    name = f"ops-{uuid.uuid4().hex[:6]}"
    r = await client.post(
        "/v1/users",
        json={"username": name, "password": "a-good-password", "role": "coordinator"},
        headers={**admin_headers, "X-Request-ID": f"req-{name}"},
    )
    assert r.status_code == 201
    user_id = r.json()["id"]
    assert (
        await client.post("/v1/auth/token", json={"username": name, "password": "a-good-password"})
    ).status_code == 200
    r = await client.patch(f"/v1/users/{user_id}", json={"role": "viewer"}, headers=admin_headers)
    assert r.json()["role"] == "viewer"
    assert (await client.delete(f"/v1/users/{user_id}", headers=admin_headers)).status_code == 204
    assert (
        await client.post("/v1/auth/token", json={"username": name, "password": "a-good-password"})
    ).status_code == 401
    rows = await db.fetch("SELECT action, actor, request_id FROM audit_log WHERE target_id = $1 ORDER BY id", user_id)
    actions = [r["action"] for r in rows]
    assert actions[:1] == ["user.create"] and "user.update" in actions and "user.deactivate" in actions
    assert rows[0]["actor"] == "user:admin" and rows[0]["request_id"] == f"req-{name}"


async def test_duplicate_username_is_409_and_writes_nothing(client: httpx.AsyncClient, admin_headers: dict, db) -> None:  # type: ignore[no-untyped-def]
    before = await db.fetchval("SELECT count(*) FROM audit_log")
    r = await client.post(
        "/v1/users", json={"username": "admin", "password": "whatever-long", "role": "viewer"}, headers=admin_headers
    )
    assert r.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM audit_log") == before


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"name": 5}',
        b'{"name": "x", "unknown": true}',
        b"{}",
        b"[]",
    ],
)
async def test_bad_team_bodies_are_4xx_problems(
    client: httpx.AsyncClient, admin_headers: dict, body: bytes, db
) -> None:  # type: ignore[no-untyped-def]
    before = await db.fetchval("SELECT count(*) FROM teams")
    r = await client.post("/v1/teams", content=body, headers={**admin_headers, "content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    problem = r.json()
    assert problem["status"] == r.status_code and problem["title"] and problem["type"].startswith("https://")
    if r.status_code == 422:
        assert problem["errors"]
    assert await db.fetchval("SELECT count(*) FROM teams") == before


async def test_coordinator_manages_only_teams_below_theirs(client: httpx.AsyncClient, db) -> None:  # type: ignore[no-untyped-def]
    fire_coord = bearer(await login(client, "fire-coord"))
    fire = await db.fetchval("SELECT id FROM teams WHERE name = 'Fire'")
    ems = await db.fetchval("SELECT id FROM teams WHERE name = 'EMS'")
    ok = await client.post(
        "/v1/teams", json={"name": f"Engine {uuid.uuid4().hex[:4]}", "parent_id": str(fire)}, headers=fire_coord
    )
    assert ok.status_code == 201
    denied = await client.post(
        "/v1/teams", json={"name": f"Medic {uuid.uuid4().hex[:4]}", "parent_id": str(ems)}, headers=fire_coord
    )
    assert denied.status_code == 403
    # Their own team is not "below" them: they cannot rename or delete it.
    assert (await client.patch(f"/v1/teams/{fire}", json={"description": "x"}, headers=fire_coord)).status_code == 403
    assert (
        await client.patch(f"/v1/teams/{ok.json()['id']}", json={"description": "night shift"}, headers=fire_coord)
    ).status_code == 200


async def test_team_cycle_is_refused(client: httpx.AsyncClient, admin_headers: dict) -> None:
    a = (await client.post("/v1/teams", json={"name": f"A {uuid.uuid4().hex[:4]}"}, headers=admin_headers)).json()
    b = (
        await client.post(
            "/v1/teams", json={"name": f"B {uuid.uuid4().hex[:4]}", "parent_id": a["id"]}, headers=admin_headers
        )
    ).json()
    r = await client.patch(f"/v1/teams/{a['id']}", json={"parent_id": b["id"]}, headers=admin_headers)
    assert r.status_code == 422


async def test_device_token_shown_once_stored_hashed_and_revocable(
    client: httpx.AsyncClient, coord_headers: dict, db
) -> None:  # type: ignore[no-untyped-def]
    responder = (
        await client.post("/v1/responders", json={"callsign": f"DV-{uuid.uuid4().hex[:4]}"}, headers=coord_headers)
    ).json()
    r = await client.post("/v1/devices", json={"responder_id": responder["id"], "name": "phone"}, headers=coord_headers)
    assert r.status_code == 201
    device = r.json()
    assert device["token"].startswith("dev_")
    stored = await db.fetchval("SELECT token_hash FROM devices WHERE id = $1", uuid.UUID(device["id"]))
    assert stored != device["token"] and len(stored) == 64
    listed = (await client.get("/v1/devices", params={"responder_id": responder["id"]}, headers=coord_headers)).json()
    assert listed["items"][0]["id"] == device["id"] and "token" not in listed["items"][0]
    dup = await client.post(
        "/v1/devices", json={"responder_id": responder["id"], "unique_id": device["unique_id"]}, headers=coord_headers
    )
    assert dup.status_code == 409
    revoked = await client.post(f"/v1/devices/{device['id']}/revoke", headers=coord_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]


async def test_users_list_paginates_with_cursor(client: httpx.AsyncClient, admin_headers: dict) -> None:
    first = (await client.get("/v1/users", params={"limit": 2}, headers=admin_headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await client.get("/v1/users", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin_headers)
    ).json()
    assert {u["id"] for u in first["items"]}.isdisjoint({u["id"] for u in second["items"]})
    bad = await client.get("/v1/users", params={"cursor": "!!!"}, headers=admin_headers)
    assert bad.status_code == 422


async def test_demo_password_setting_is_used(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/token", json={"username": "coord", "password": DEMO_PASSWORD})
    assert r.status_code == 200


async def test_a_deactivated_user_loses_access_before_the_token_expires(
    client: httpx.AsyncClient, admin_headers: dict
) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    r = await client.post(
        "/v1/users",
        json={"username": name, "password": "a-good-password", "role": "coordinator"},
        headers=admin_headers,
    )
    assert r.status_code == 201
    headers = bearer(await login(client, name, "a-good-password"))
    assert (await client.get("/v1/incidents", headers=headers)).status_code == 200
    assert (await client.delete(f"/v1/users/{r.json()['id']}", headers=admin_headers)).status_code == 204

    async def refused() -> bool:
        # Each worker re-reads the user row within a few seconds (at once on the worker that deactivated).
        r1 = await client.get("/v1/incidents", headers=headers)
        r2 = await client.get("/v1/me", headers=headers)
        return r1.status_code == 401 and r2.status_code in (401, 404)

    await eventually(refused, timeout=15, interval=0.5)
    r = await client.get("/v1/incidents", headers=headers)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "deactivated" in r.json()["detail"]
