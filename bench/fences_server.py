"""Server-side fence evaluator benchmark: committed positions → fence events in PostgreSQL.

Run: .venv/bin/python bench/fences_server.py [--seconds 8] [--responders 10000] [--hazards 1000] [--rate 10000]

A throwaway database; 1,000 synthetic hazards (0.5-20 km squares) and 10,000 responders random-walking
over the same 2°×2° region; positions inserted with one ``unnest`` statement per 100 ms at
``--rate`` fixes/s while the real :class:`server.fences.evaluator.FenceEvaluator` (in this process,
leader lock, fencing token, one transaction per cycle) consumes them. Prints:

* the raw ceiling: the same unnest insert alone (rows/s), and the evaluator's consumed rate ÷ it;
* event lag: insert-commit → checkpoint covering that batch (p50/p95), reorder window included;
* one hazard update re-evaluating every responder (engine time, and NOTIFY → committed end to end);
* candidate pairs after the H3 prefilter against brute force.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import h3
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.geodesy import point_buffer
from server.bus import ChangeBus
from server.db import connect
from server.fences.evaluator import FenceEvaluator
from server.hazards.repository import insert_hazard, update_hazard
from server.settings import load_settings
from tests.conftest import create_database, drop_database, run_cli, sitrep_env

LON0, LAT0, SPAN = -92.5, 41.0, 2.0
INSERT = (
    "INSERT INTO positions (responder_id, fix_time, received_at, geom, h3, accuracy_m, source) "
    "SELECT r, t, t, ST_SetSRID(ST_MakePoint(x, y), 4326), h, 5, 'bench' "
    "FROM unnest($1::uuid[], $2::timestamptz[], $3::float8[], $4::float8[], $5::bigint[]) AS u(r, t, x, y, h)"
)


async def main(args: argparse.Namespace) -> None:
    name = f"sitrep_bench_fsrv_{os.getpid()}"
    url = create_database(name)
    env = sitrep_env(url, "redis://127.0.0.1:1/0", Path("/tmp"), SITREP_REORDER_WINDOW_S=str(args.window),
                     SITREP_FENCE_POLL_MS="50")  # fmt: skip
    try:
        run_cli(env, "migrate")
        settings = load_settings(env)
        conn = await connect(settings.db)
        rng = random.Random(7)
        rids = [uuid.uuid4() for _ in range(args.responders)]
        pos = {r: [LON0 + rng.random() * SPAN, LAT0 + rng.random() * SPAN] for r in rids}

        # hazards
        t0 = time.perf_counter()
        hazard_ids = []
        async with conn.transaction():
            for _ in range(args.hazards):
                lon, lat = LON0 + rng.random() * SPAN, LAT0 + rng.random() * SPAN
                geom = point_buffer(lon, lat, rng.uniform(500, 10_000), segments=16)
                row = await insert_hazard(conn, geom, {"kind": "bench", "title": "b"})
                hazard_ids.append(row["id"])
        print(f"hazards: {args.hazards} created (validated cover + cells) in {time.perf_counter() - t0:.2f}s")

        def batch(n: int) -> tuple[list, list, list, list, list]:
            now = datetime.now(UTC)
            rs = rng.sample(rids, n)
            xs, ys, hs = [], [], []
            for r in rs:
                p = pos[r]
                p[0] += rng.uniform(-0.002, 0.002)
                p[1] += rng.uniform(-0.002, 0.002)
                xs.append(p[0])
                ys.append(p[1])
                hs.append(h3.str_to_int(h3.latlng_to_cell(p[1], p[0], 9)))
            return rs, [now] * n, xs, ys, hs

        # raw ceiling: the same insert, nothing else
        n_raw, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 2.0:
            await conn.execute(INSERT, *batch(1000))
            n_raw += 1000
        raw_rate = n_raw / (time.perf_counter() - t0)
        # seed every responder once so the evaluator knows them, then start it (first leader starts at max seq)
        await conn.execute("DELETE FROM positions")
        for i in range(0, len(rids), 5000):
            chunk = rids[i : i + 5000]
            await conn.execute(INSERT, chunk, [datetime.now(UTC)] * len(chunk), [pos[r][0] for r in chunk],
                               [pos[r][1] for r in chunk], [0] * len(chunk))  # fmt: skip
        await conn.execute(
            "INSERT INTO fence_positions (responder_id, lon, lat, fix_time, seq) "
            "SELECT DISTINCT ON (responder_id) responder_id, ST_X(geom), ST_Y(geom), fix_time, seq FROM positions "
            "ORDER BY responder_id, seq DESC"
        )
        runtime = SimpleNamespace(settings=settings, bus=ChangeBus(), by_name={})
        ev = FenceEvaluator()
        await ev.start(runtime)
        while not ev.leading or not hasattr(ev, "webhooks"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

        # steady load
        per_tick = max(1, args.rate // 10)
        marks: list[tuple[int, float]] = []
        t_start = time.perf_counter()
        next_tick = t_start
        while time.perf_counter() - t_start < args.seconds:
            await conn.execute(INSERT, *batch(per_tick))
            marks.append((await conn.fetchval("SELECT max(seq) FROM positions"), time.perf_counter()))
            next_tick += 0.1
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        offered = per_tick * len(marks) / (time.perf_counter() - t_start)
        lags: list[float] = []
        pending = list(marks)
        deadline = time.perf_counter() + 30
        while pending and time.perf_counter() < deadline:
            cp = await conn.fetchval("SELECT checkpoint_seq FROM leader_state WHERE name = 'fences'")
            now = time.perf_counter()
            while pending and pending[0][0] <= cp:
                lags.append(now - pending.pop(0)[1])
            await asyncio.sleep(0.01)
        consumed = (len(marks) - len(pending)) * per_tick / (time.perf_counter() - t_start)
        lags.sort()
        st = ev.engine.stats
        events = await conn.fetchval("SELECT count(*) FROM fence_events")

        # one hazard update → every responder re-evaluated
        fence = ev.engine.fence(str(hazard_ids[0]))
        assert fence is not None
        moved = shapely.affinity.translate(fence.geometry, 0.01, 0.0)
        t0 = time.perf_counter()
        ev.engine.upsert_fence(fence.__class__(**{**{f: getattr(fence, f) for f in fence.__struct_fields__},
                                                  "geometry": moved, "version": fence.version + 1}),
                               datetime.now(UTC))  # fmt: skip
        engine_ms = (time.perf_counter() - t0) * 1000
        before = await conn.fetchval("SELECT updated_at FROM leader_state WHERE name = 'fences'")
        t0 = time.perf_counter()
        async with conn.transaction():
            await update_hazard(conn, hazard_ids[1], {}, point_buffer(LON0 + 1, LAT0 + 1, 20_000, segments=32))
        while await conn.fetchval("SELECT updated_at FROM leader_state WHERE name = 'fences'") == before:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        e2e_ms = (time.perf_counter() - t0) * 1000
        # many hazards changed in one transaction (a feed poll): one NOTIFY burst, re-evaluated as one batch
        batch_ids = hazard_ids[2 : 2 + args.batch_updates]
        moved_geoms = [
            point_buffer(LON0 + rng.random() * SPAN, LAT0 + rng.random() * SPAN, rng.uniform(500, 10_000), segments=16)
            for _ in batch_ids
        ]
        before = await conn.fetchval("SELECT updated_at FROM leader_state WHERE name = 'fences'")
        t0 = time.perf_counter()
        async with conn.transaction():
            for hid, geom in zip(batch_ids, moved_geoms, strict=True):
                await update_hazard(conn, hid, {}, geom)
        t_written = time.perf_counter()
        versions = {str(r["id"]): int(r["updated_at"].timestamp() * 1_000_000)
                    for r in await conn.fetch("SELECT id, updated_at FROM hazards WHERE id = ANY($1)", batch_ids)}  # fmt: skip
        ids = list(versions)
        while time.perf_counter() - t_written < 60:
            fences = [ev.engine.fence(h) for h in ids]
            if all(f is not None and f.version == versions[f.id] for f in fences):
                inside = sum(len(ev.engine.inside(h)) for h in ids)
                stored = await conn.fetchval(
                    "SELECT count(*) FROM fence_states WHERE fence_id = ANY($1) AND state->>'state' = 'inside'", ids
                )
                if stored == inside:
                    break
            await asyncio.sleep(0.005)
        batch_ms = (time.perf_counter() - t_written) * 1000
        write_ms = (t_written - t0) * 1000
        await ev.stop()
        await conn.close()

        print(f"responders={args.responders} hazards={args.hazards} reorder_window_s={args.window}")
        print(f"raw unnest insert ceiling: {raw_rate:,.0f} rows/s (same connection, same statement)")
        print(f"offered: {offered:,.0f} fixes/s for {args.seconds}s; evaluator consumed {consumed:,.0f} fixes/s "
              f"= {consumed / raw_rate:.2f} x raw insert ceiling")  # fmt: skip
        if lags:
            p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
            print(f"event lag (commit -> checkpoint incl. window): p50 {statistics.median(lags) * 1000:.0f} ms, "
                  f"p95 {p95 * 1000:.0f} ms, batches {len(lags)}/{len(marks)}")  # fmt: skip
        print(f"events written: {events:,}; engine batches {st.batches}, fixes evaluated {st.fixes_evaluated:,}")
        print(f"candidate pairs {st.candidate_pairs:,} vs brute force {st.brute_force_pairs:,} "
              f"= {st.candidate_pairs / max(1, st.brute_force_pairs):.5f} (exact tests {st.exact_tests:,})")  # fmt: skip
        print(f"hazard update re-evaluating {args.responders} responders: engine {engine_ms:.1f} ms; "
              f"API write -> NOTIFY -> events committed {e2e_ms:.0f} ms")  # fmt: skip
        print(f"{len(batch_ids)} hazards moved in one transaction ({write_ms:.0f} ms to write): NOTIFY -> all "
              f"re-evaluated against {args.responders} responders and committed in {batch_ms:.0f} ms")  # fmt: skip
    finally:
        drop_database(name)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--responders", type=int, default=10_000)
    p.add_argument("--hazards", type=int, default=1000)
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--window", type=float, default=0.5)
    p.add_argument("--batch-updates", type=int, default=500, help="hazards moved together in one transaction")
    asyncio.run(main(p.parse_args()))
