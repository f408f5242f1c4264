"""Durability and limits with dedicated servers: 503 when the queue is full, SIGKILL during ingest
loses no acknowledged fix, staleness events, retention by dropping partitions."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from server.maintenance import partition_name, run_partition_maintenance
from server.positions.staleness import mark_stale
from tests.conftest import Database, ServerProcess, eventually, start_server
from tests.positions.helpers import device_headers, fix, unique_time


async def test_full_queue_answers_503_with_retry_after(database: Database, tmp_path: Path) -> None:
    env = {**database.env, "SITREP_INGEST_QUEUE_LIMIT": "5", "SITREP_INGEST_FLUSH_MS": "3000"}
    srv = start_server(env, tmp_path, timeout=120)
    try:
        device = database.devices[190]  # fixes that never reach latest (the server refuses or is slow)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30) as c:
            r = await c.post(
                "/v1/positions", json=[fix(when=unique_time(7200)) for _ in range(6)], headers=device_headers(device)
            )
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.headers["content-type"].startswith("application/problem+json")
            # Three requests of 2 fixes within one 3 s window: the third does not fit.
            results = await asyncio.gather(
                *(
                    c.post(
                        "/v1/positions",
                        json=[fix(when=unique_time(7200)), fix(when=unique_time(7200))],
                        headers=device_headers(device),
                    )
                    for _ in range(3)
                )
            )
            assert sorted(x.status_code for x in results) == [200, 200, 503]
    finally:
        srv.stop()


async def test_sigkill_during_ingest_loses_no_acknowledged_fix(database: Database, tmp_path: Path, db: Any) -> None:
    srv = start_server({**database.env, "SITREP_INGEST_FLUSH_MS": "5"}, tmp_path, workers=2, timeout=120)
    acked: list[tuple[str, str]] = []
    stop = asyncio.Event()

    async def pump(device: dict[str, str], client: httpx.AsyncClient) -> None:
        base = datetime.now(UTC) - timedelta(hours=2)
        n = 0
        while not stop.is_set():
            items = [fix(when=base + timedelta(milliseconds=n + k)) for k in range(20)]
            n += 20
            try:
                r = await client.post("/v1/positions", json=items, headers=device_headers(device))
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                for a in r.json()["accepted"]:
                    acked.append((device["responder_id"], items[a["index"]]["fix_time"]))

    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
            tasks = [asyncio.create_task(pump(d, client)) for d in database.devices[150:166]]
            # Kill mid-stream: once ingest is clearly flowing (bounded wait on a loaded machine).
            await asyncio.sleep(1.0)
            await eventually(lambda: len(acked) >= 200, timeout=30)
            killed_at_count = len(acked)
            srv.stop(signal.SIGKILL)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        srv.stop(signal.SIGKILL)
    assert killed_at_count >= 200, "ingest was not running when the server was killed"
    rows = await db.fetch(
        "SELECT responder_id, fix_time FROM positions "
        "WHERE (responder_id, fix_time) IN (SELECT * FROM unnest($1::uuid[], $2::timestamptz[]))",
        [uuid.UUID(a[0]) for a in acked],
        [datetime.fromisoformat(a[1].replace("Z", "+00:00")) for a in acked],
    )
    assert len(rows) == len(set(acked)), f"{len(set(acked)) - len(rows)} acknowledged fixes were lost"


async def test_silent_responder_becomes_stale_and_a_new_fix_unstales(
    client: httpx.AsyncClient, server: ServerProcess, database: Database, admin_headers: dict[str, str], fresh: Any
) -> None:
    device = await fresh()
    # Nearly stale already (the default SITREP_STALE_AFTER_S is 300 s): the leader flips it soon.
    old = fix(when=datetime.now(UTC) - timedelta(seconds=298))
    r = await client.post("/v1/positions", json=[old], headers=device_headers(device))
    assert r.json()["accepted"][0]["status"] == "stored"
    rid = uuid.UUID(device["responder_id"])
    conn = await asyncpg.connect(database.url)
    try:
        assert await conn.fetchval("SELECT stale FROM latest_positions WHERE responder_id = $1", rid) is False

        async def flagged() -> bool:
            return bool(await conn.fetchval("SELECT stale FROM latest_positions WHERE responder_id = $1", rid))

        await eventually(flagged, timeout=30)
        url = f"/v1/responders/{device['responder_id']}"
        assert (await client.get(url, headers=admin_headers)).json()["stale"] is True
        await client.post("/v1/positions", json=[fix(when=unique_time(0))], headers=device_headers(device))
        assert await conn.fetchval("SELECT stale FROM latest_positions WHERE responder_id = $1", rid) is False
        assert (await client.get(url, headers=admin_headers)).json()["stale"] is False
    finally:
        await conn.close()


async def test_mark_stale_emits_a_positions_change_per_responder(database: Database, db: Any) -> None:
    rid = uuid.UUID(database.devices[192]["responder_id"])
    tr = db.transaction()
    await tr.start()
    try:
        await db.execute(
            "UPDATE latest_positions SET stale = false, fix_time = now() - interval '1 hour' WHERE responder_id = $1",
            rid,
        )
        mine = [c for c in await mark_stale(db, 600) if c.key == str(rid)]
        assert len(mine) == 1 and mine[0].topic == "positions"
        assert mine[0].data["stale"] is True and mine[0].data["id"] == str(rid)
        assert mine[0].lon is not None and mine[0].team_id is not None
        assert not [c for c in await mark_stale(db, 600) if c.key == str(rid)]  # once, not every sweep
    finally:
        await tr.rollback()


async def test_retention_drops_whole_old_partitions_and_refuses_too_old_fixes(
    client: httpx.AsyncClient, database: Database, db: Any
) -> None:
    today = datetime.now(UTC).date()
    old_day = today - timedelta(days=40)
    name = partition_name(old_day)
    start = datetime(old_day.year, old_day.month, old_day.day, tzinfo=UTC)
    await db.execute(
        f"CREATE TABLE {name} PARTITION OF positions FOR VALUES FROM ('{start.isoformat()}') "
        f"TO ('{(start + timedelta(days=1)).isoformat()}')"
    )
    rid = uuid.UUID(database.devices[193]["responder_id"])
    await db.execute(
        "INSERT INTO positions (responder_id, fix_time, geom, h3) VALUES ($1, $2, ST_SetSRID(ST_MakePoint(-91.6, 41.9), 4326), 1)",
        rid,
        start + timedelta(hours=1),
    )
    _, dropped = await run_partition_maintenance(db, retention_days=30, ahead_days=3)
    assert name in dropped
    assert await db.fetchval("SELECT to_regclass($1)", name) is None
    assert (
        await db.fetchval(
            "SELECT count(*) FROM positions WHERE responder_id = $1 AND fix_time < $2", rid, start + timedelta(days=1)
        )
        == 0
    )
    r = await client.post(
        "/v1/positions",
        json=[fix(when=datetime.now(UTC) - timedelta(days=31))],
        headers=device_headers(database.devices[193]),
    )
    assert r.json()["rejected"][0]["reason"] == "too_old"
