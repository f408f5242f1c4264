"""Fixtures of the fence tests: their own database and server (short reorder window, fast retries,
private webhook targets allowed), a local webhook receiver, and helpers to move responders."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Database,
    RedisServer,
    ServerProcess,
    create_database,
    drop_database,
    run_cli,
    sitrep_env,
    start_server,
)

from .receiver import Receiver

FENCE_ENV = {
    "SITREP_REORDER_WINDOW_S": "0.3",
    "SITREP_WEBHOOK_ALLOW_PRIVATE": "true",
    "SITREP_OUTBOX_BACKOFF_BASE_S": "0.2",
    "SITREP_OUTBOX_BACKOFF_CAP_S": "0.5",
    "SITREP_OUTBOX_TIMEOUT_S": "2",
    "SITREP_OUTBOX_POLL_MS": "50",
    "SITREP_FENCE_POLL_MS": "50",
    "SITREP_FENCE_GAP_GRACE_S": "1",
}

_device_counter = itertools.count(200)


def make_database(name: str, redis_url: str, state_dir: Any, **extra: str) -> Database:
    import json

    url = create_database(name)
    env = sitrep_env(url, redis_url, state_dir, **{**FENCE_ENV, **extra})
    run_cli(env, "migrate")
    run_cli(env, "seed-demo")
    devices = json.loads((state_dir / "demo-devices.json").read_text())
    return Database(name, url, state_dir, env, devices)


@pytest.fixture(scope="session")
def fence_db(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    name = f"sitrep_test_fences_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    db = make_database(name, redis_server.url, tmp_path_factory.mktemp("fence-state"))
    yield db
    drop_database(name)


@pytest.fixture(scope="session")
def fence_server(fence_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_server(fence_db.env, tmp_path_factory.mktemp("fence-logs"), workers=2, timeout=120)
    yield srv
    srv.stop()


@pytest.fixture
async def fc(fence_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fence_server.url, timeout=30) as c:
        yield c


async def token_for(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    r = await client.post("/v1/auth/token", json={"username": username, "password": "sitrep-demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
async def admin(fc: httpx.AsyncClient) -> dict[str, str]:
    return await token_for(fc, "admin")


@pytest.fixture
async def fdb(fence_db: Database) -> AsyncIterator[Any]:
    import asyncpg

    conn = await asyncpg.connect(fence_db.url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def device(fence_db: Database) -> dict[str, str]:
    """A demo device (and its responder) no other fence test uses."""
    return fence_db.devices[next(_device_counter)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


_tick = itertools.count(1)


async def move(
    client: httpx.AsyncClient, device: dict[str, str], lon: float, lat: float, *, ago_s: float = 0.0, **extra: Any
) -> None:
    """Post one fix through the real positions API (committed when this returns)."""
    when = datetime.now(UTC) - timedelta(seconds=ago_s) + timedelta(microseconds=next(_tick))
    body = [{"fix_time": iso(when), "lon": lon, "lat": lat, "accuracy_m": 3.0, **extra}]
    r = await client.post("/v1/positions", json=body, headers={"Authorization": f"Bearer {device['token']}"})
    assert r.status_code == 200, r.text


def square(lon: float, lat: float, half_deg: float = 0.01) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - half_deg, lat - half_deg],
                [lon + half_deg, lat - half_deg],
                [lon + half_deg, lat + half_deg],
                [lon - half_deg, lat + half_deg],
                [lon - half_deg, lat - half_deg],
            ]
        ],
    }


async def events_of(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/v1/fence-events", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])
