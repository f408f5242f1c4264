"""The group commit's one statement (writer.write_fixes) and concurrent submissions of the same fixes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx

from server.positions.fixes import Fix
from server.positions.writer import write_fixes
from tests.conftest import Database
from tests.positions.helpers import CITY, device_headers, fix, unique_time


async def test_write_stores_every_column_and_reports_duplicates_and_latest_by_position(
    database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    rid = uuid.UUID(device["responder_id"])
    base = unique_time(120)
    plain = [Fix(rid, base + timedelta(seconds=i, microseconds=7), CITY[0] + i * 1e-4, CITY[1]) for i in range(3)]
    full = Fix(
        rid,
        base + timedelta(seconds=10, microseconds=999_999),
        CITY[0],
        CITY[1] + 0.01,
        accuracy_m=900.0,
        speed_mps=2.5,
        heading_deg=45.0,
        altitude_m=210.0,
        battery_pct=55.0,
        source="osmand",
        client_id="gc-1",
        poor_accuracy=True,
        attributes={"alarm": "sos"},
    )
    first = await write_fixes(db, [*plain, full], 300)
    assert (first.stored, first.duplicates) == (4, [])
    assert [x.at for x in first.latest] == [3] and first.latest[0].stale is False

    late = Fix(rid, base - timedelta(seconds=30), CITY[0], CITY[1])
    again = await write_fixes(db, [plain[1], late, full], 300)
    assert (again.stored, again.duplicates, again.latest) == (1, [0, 2], [])

    rows = await db.fetch(
        "SELECT fix_time, accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct, source, client_id, "
        "poor_accuracy, attributes, h3 FROM positions WHERE responder_id = $1 ORDER BY fix_time",
        rid,
    )
    assert [r["fix_time"] for r in rows] == [late.fix_time, *(f.fix_time for f in plain), full.fix_time]
    stored_full = dict(rows[-1])
    assert stored_full["poor_accuracy"] is True and stored_full["client_id"] == "gc-1"
    assert (stored_full["heading_deg"], stored_full["altitude_m"], stored_full["source"]) == (45.0, 210.0, "osmand")
    assert stored_full["h3"] == full.h3 and '"sos"' in stored_full["attributes"]
    assert all(r["poor_accuracy"] is False and r["heading_deg"] is None for r in rows[:-1])
    latest = await db.fetchrow("SELECT fix_time FROM latest_positions WHERE responder_id = $1", rid)
    assert latest is not None and latest["fix_time"] == full.fix_time

    # Device and source differing within a flush (one shared value goes as a parameter, mixed as arrays).
    dev = await db.fetchval("SELECT id FROM devices WHERE unique_id = $1", device["unique_id"])
    mixed = [
        Fix(rid, base + timedelta(seconds=20), CITY[0], CITY[1], device_id=dev, source="osmand"),
        Fix(rid, base + timedelta(seconds=21), CITY[0], CITY[1], device_id=None, source="api"),
        Fix(rid, base + timedelta(seconds=22), CITY[0], CITY[1], device_id=dev, source="api"),
    ]
    assert (await write_fixes(db, mixed, 300)).stored == 3
    shared = [
        Fix(rid, base + timedelta(seconds=30 + i), CITY[0], CITY[1], device_id=dev, source="ws") for i in range(2)
    ]
    assert (await write_fixes(db, shared, 300)).stored == 2
    got = await db.fetch(
        "SELECT device_id, source FROM positions WHERE responder_id = $1 AND fix_time >= $2 ORDER BY fix_time",
        rid,
        mixed[0].fix_time,
    )
    assert [(r["device_id"], r["source"]) for r in got] == [
        (dev, "osmand"),
        (None, "api"),
        (dev, "api"),
        (dev, "ws"),
        (dev, "ws"),
    ]


async def test_concurrent_posts_of_the_same_fixes_store_each_once(
    client: httpx.AsyncClient, database: Database, db: Any, fresh: Any
) -> None:
    device = await fresh()
    items = [fix() for _ in range(50)]
    answers = await asyncio.gather(
        *(client.post("/v1/positions", json=items, headers=device_headers(device)) for _ in range(4))
    )
    statuses = [a["status"] for r in answers for a in r.json()["accepted"]]
    assert statuses.count("stored") == 50 and statuses.count("duplicate") == 150
    for i in range(50):  # each fix stored in exactly one of the answers
        assert sum(r.json()["accepted"][i]["status"] == "stored" for r in answers) == 1
    count = await db.fetchval(
        "SELECT count(*) FROM positions WHERE responder_id = $1", uuid.UUID(device["responder_id"])
    )
    assert count == 50


def test_a_flush_merges_submissions_to_unique_fixes() -> None:
    from server.positions.batcher import _merge, _Submission

    a, b = uuid.uuid4(), uuid.uuid4()
    t = unique_time()
    fa = [Fix(a, t + timedelta(seconds=i), CITY[0], CITY[1]) for i in range(2)]
    fb = [Fix(b, t, CITY[0], CITY[1])]
    never: Any = None
    # Distinct responders: concatenated as they are.
    fixes, where = _merge([_Submission(fa, never, {a}), _Submission(fb, never, {b})])
    assert fixes == [*fa, fb[0]] and where is None
    # The same responder in two submissions (or responders unknown): the repeat points nowhere (-1).
    repeat = [Fix(a, t + timedelta(seconds=1), CITY[0], CITY[1]), Fix(a, t + timedelta(seconds=5), CITY[0], CITY[1])]
    for responders in ({a}, None):
        fixes, where = _merge([_Submission(fa, never, {a}), _Submission(repeat, never, responders)])
        assert fixes == [*fa, repeat[1]] and where == [0, 1, -1, 2]


async def test_device_tokens_missing_together_resolve_in_one_lookup_each_to_its_own_device(database: Database) -> None:
    import asyncpg
    import pytest

    from server.devices.auth import DeviceAuthenticator
    from server.errors import Unauthorized

    devices = database.devices[:12]
    pool = await asyncpg.create_pool(database.url, min_size=1, max_size=2)
    try:
        auth = DeviceAuthenticator()
        results = await asyncio.gather(
            *(auth.resolve(pool, d["token"]) for d in devices),
            auth.resolve(pool, "dev_not-a-token"),
            return_exceptions=True,
        )
        assert [str(r.responder_id) for r in results[:-1]] == [d["responder_id"] for d in devices]  # type: ignore[union-attr]
        assert [r.unique_id for r in results[:-1]] == [d["unique_id"] for d in devices]  # type: ignore[union-attr]
        assert isinstance(results[-1], Unauthorized)
        assert len(auth._cache) == len(devices) + 1  # the unknown token is remembered as unknown too
        with pytest.raises(Unauthorized):
            await auth.resolve(pool, "dev_not-a-token")
        assert (await auth.resolve(pool, devices[0]["token"])).unique_id == devices[0]["unique_id"]
    finally:
        await pool.close()
