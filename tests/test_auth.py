"""Token flow, roles, bad input, rate limiting and audit rows against the real server."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import DEMO_PASSWORD, bearer, login


async def test_demo_admin_token_opens_me(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/token", json={"username": "admin", "password": DEMO_PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0 and body["refresh_token"].startswith("rt_")
    me = await client.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "admin" and me.json()["role"] == "admin"
    assert "users:write" in me.json()["permissions"]


async def test_oauth2_password_form_login(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/token", data={"grant_type": "password", "username": "coord", "password": DEMO_PASSWORD}
    )
    assert r.status_code == 200
    me = await client.get("/v1/me", headers=bearer(r.json()["access_token"]))
    assert me.json()["role"] == "coordinator"


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/auth/token", json={"username": "viewer", "password": DEMO_PASSWORD})).json()
    second = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    # Reusing the spent token is treated as theft: refused, and the rotated one dies too.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.headers["content-type"].startswith("application/problem+json")
    after = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401


async def test_logout_revokes_refresh_token(client: httpx.AsyncClient) -> None:
    pair = (await client.post("/v1/auth/token", json={"username": "viewer", "password": DEMO_PASSWORD})).json()
    out = await client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert out.status_code == 204
    again = await client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert again.status_code == 401


@pytest.mark.parametrize("header", ["Bearer nonsense.token.here", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "Basic abc"])
async def test_bad_tokens_are_401_problems(client: httpx.AsyncClient, header: str) -> None:
    r = await client.get("/v1/me", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 401 and r.json()["type"].endswith("/unauthorized")


async def test_expired_token_is_refused(client: httpx.AsyncClient) -> None:
    import time

    import jwt

    from tests.conftest import JWT_SECRET

    me = (await client.get("/v1/me", headers=bearer(await login(client, "admin")))).json()
    token = jwt.encode(
        {"sub": me["id"], "role": "admin", "typ": "access", "exp": int(time.time()) - 5},
        JWT_SECRET,
        algorithm="HS256",
    )
    r = await client.get("/v1/me", headers=bearer(token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def test_failed_logins_are_rate_limited_with_growing_delay(client: httpx.AsyncClient) -> None:
    name = f"ghost-{uuid.uuid4().hex[:6]}"
    statuses = []
    for _ in range(7):
        r = await client.post("/v1/auth/token", json={"username": name, "password": "wrong-password"})
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5
    assert 429 in statuses[5:]
    limited = await client.post("/v1/auth/token", json={"username": name, "password": "wrong-password"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_login_problem_details_for_malformed_and_missing(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/token", content=b'{"username": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = await client.post("/v1/auth/token", json={"username": "admin"})
    assert r.status_code == 422 and r.json()["errors"]
