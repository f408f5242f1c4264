"""Leader failover: kill the evaluator leader's process group with SIGKILL mid-stream; the other
server takes over from the checkpoint and no event is duplicated or lost."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import RedisServer, drop_database, eventually, start_server

from .conftest import make_database, move, square, token_for


async def _leader_pgid(url: str) -> int | None:
    conn = await asyncpg.connect(url)
    try:
        holder = await conn.fetchval("SELECT holder FROM leader_state WHERE name = 'fences'")
        locked = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
    finally:
        await conn.close()
    if not holder or not locked:
        return None
    try:
        return os.getpgid(int(holder.rsplit(":", 1)[1]))
    except ProcessLookupError:
        return None


async def test_killed_leader_is_replaced_without_duplicates_or_losses(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    name = f"sitrep_test_failover_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    db = make_database(name, redis_server.url, tmp_path_factory.mktemp("failover-state"))
    logs = tmp_path_factory.mktemp("failover-logs")
    a = start_server(db.env, logs, workers=1, timeout=120)
    b = start_server(db.env, logs, workers=1, timeout=120)
    servers = {a.proc.pid: a, b.proc.pid: b}
    try:
        pgid = await eventually(lambda: _leader_pgid(db.url), timeout=15)
        leader = servers[pgid]
        survivor = b if leader is a else a
        lon, lat = -97.0, 37.0
        devices = db.devices[10:30]
        async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as c:
            admin = await token_for(c, "admin")
            hz = (
                await c.post("/v1/hazards", json={"kind": "flood", "geometry": square(lon, lat)}, headers=admin)
            ).json()
            await asyncio.sleep(0.5)
            path = [(lon - 0.05, lat), (lon, lat), (lon - 0.05, lat), (lon, lat), (lon - 0.05, lat)]
            for step, (x, y) in enumerate(path[:3]):
                for d in devices:
                    await move(c, d, x, y + 0.0001 * step)
            leader.stop(signal.SIGKILL)  # fixes are still buffered in its reorder window
            for step, (x, y) in enumerate(path[3:], start=3):
                for d in devices:
                    await move(c, d, x, y + 0.0001 * step)

            async def settled() -> list[Any] | None:
                conn = await asyncpg.connect(db.url)
                try:
                    rows = await conn.fetch(
                        "SELECT responder_id::text AS rid, detect, fix_time FROM fence_events WHERE fence_id = $1 "
                        "ORDER BY responder_id, fix_time, id",
                        hz["id"],
                    )
                finally:
                    await conn.close()
                return rows if len(rows) >= 4 * len(devices) else None

            rows = await eventually(settled, timeout=30)
            await asyncio.sleep(1.0)
            rows = await settled()
            assert rows is not None
            by_responder: dict[str, list[str]] = {}
            for r in rows:
                by_responder.setdefault(r["rid"], []).append(r["detect"])
            assert set(by_responder) == {d["responder_id"] for d in devices}
            for rid, detects in by_responder.items():
                assert detects == ["enter", "exit", "enter", "exit"], (rid, detects)
            dupes = Counter((r["rid"], r["detect"], r["fix_time"]) for r in rows)
            assert max(dupes.values()) == 1
            new_pgid = await _leader_pgid(db.url)
            assert new_pgid == survivor.proc.pid
            conn = await asyncpg.connect(db.url)
            token = await conn.fetchval("SELECT fencing_token FROM leader_state WHERE name = 'fences'")
            await conn.close()
            assert token >= 2
    finally:
        a.stop()
        b.stop()
        drop_database(name)
