"""Server-side fence evaluator benchmark: committed positions → fence events in PostgreSQL.

Run: .venv/bin/python bench/fences_server.py [--seconds 8] [--responders 10000] [--hazards 1000] [--rate 10000]

A throwaway database; 1,000 synthetic hazards (discs of 0.5-10 km radius) and 10,000 responders random-walking
over the same 2°×2° region; positions inserted with one ``unnest`` statement per 100 ms at
``--rate`` fixes/s while the real :class:`server.fences.evaluator.FenceEvaluator` (in this process,
leader lock, fencing token, one transaction per cycle) consumes them. Prints:

* the raw ceiling: the same unnest insert alone (rows/s), and the evaluator's consumed rate ÷ it;
  the consumed rate is given twice: the committed rate while the load runs (fixes between the first
  and the last tick over the time between their checkpoints; ≥ 1 x offered keeps up), and the older
  figure that divides by the load's duration plus the final drain (hold included, so it stays below
  the offered rate even when the evaluator keeps up); with the lag's trend (first vs last third);
* a first-fix phase (unless ``--no-first-fixes``): every responder's first fix after the leader
  started, at ``--rate``; each enters every hazard it stands in (~3 per responder), so this is the
  enter burst (events, notifications and visit rows for ~30,000 enters), reported on its own;
* the steady phase (``--seconds``) of random-walk fixes at ``--rate``;
* for both, event lag per 100 ms tick: insert commit -> the first moment a *committed* checkpoint
  covers the tick's highest seq, observed every 5 ms while the load runs. Fixes are held for the
  reorder window (``--window``) before they are evaluated, by design, so the raw figure includes
  that hold; it is printed raw and minus the window ("evaluation only"), labelled;
* one hazard update re-evaluating every responder (engine time, and NOTIFY → committed end to end);
* candidate pairs after the H3 prefilter against brute force.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import asyncpg
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

INSERT_MAX_SEQ = f"WITH i AS ({INSERT} RETURNING seq) SELECT max(seq) FROM i"


class Walk:
    """Responders random-walking; ``batch`` moves some of them one step and returns INSERT arguments."""

    def __init__(self, rids: list[uuid.UUID], pos: dict[uuid.UUID, list[float]], rng: random.Random) -> None:
        self.rids, self.pos, self.rng = rids, pos, rng

    def batch(self, n: int, chosen: list[uuid.UUID] | None = None) -> tuple[list, list, list, list, list]:
        now = datetime.now(UTC)
        rs = chosen if chosen is not None else self.rng.sample(self.rids, n)
        xs, ys, hs = [], [], []
        for r in rs:
            p = self.pos[r]
            p[0] += self.rng.uniform(-0.002, 0.002)
            p[1] += self.rng.uniform(-0.002, 0.002)
            xs.append(p[0])
            ys.append(p[1])
            hs.append(h3.str_to_int(h3.latlng_to_cell(p[1], p[0], 9)))
        return rs, [now] * len(rs), xs, ys, hs


def feeder(url: str, walk: Walk, rate: int, seconds: float, first_fixes: bool, pipe: Connection) -> None:
    """The load, in its own process (as ingest is in production: other workers), so the evaluator's
    CPU does not slow the offered rate. Sends ``("mark", max_seq, monotonic commit time)`` per 100 ms
    tick and ``("end", offered_per_s)`` per phase; waits for ``"go"`` between phases."""

    async def phase(pick: list[uuid.UUID] | None) -> None:
        per_tick = max(1, rate // 10)
        conn = await asyncpg.connect(url)
        t_start = time.monotonic()
        next_tick, sent = t_start, 0
        while (pick is None and time.monotonic() - t_start < seconds) or (pick is not None and sent < len(pick)):
            rs = walk.batch(per_tick) if pick is None else walk.batch(0, pick[sent : sent + per_tick])
            sent += len(rs[0])
            seq = await conn.fetchval(INSERT_MAX_SEQ, *rs)
            pipe.send(("mark", seq, time.monotonic()))
            next_tick += 0.1
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        pipe.send(("end", sent / (time.monotonic() - t_start)))
        await conn.close()

    async def run() -> None:
        if first_fixes:
            order = list(walk.rids)
            walk.rng.shuffle(order)
            await phase(order)
            pipe.recv()
        await phase(None)

    asyncio.run(run())


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

        # responders exist (positions only come from their devices; notifications reference them)
        await conn.execute(
            "INSERT INTO responders (id, callsign) SELECT r, 'B' || n FROM unnest($1::uuid[]) WITH ORDINALITY AS u(r, n)",
            rids,
        )
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

        walk = Walk(rids, pos, rng)
        batch = walk.batch

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

        # the load comes from another process; this one watches the evaluator's committed checkpoint
        parent, child = multiprocessing.Pipe()
        proc = multiprocessing.get_context("spawn").Process(
            target=feeder, args=(url, walk, args.rate, args.seconds, args.first_fixes, child), daemon=True
        )
        proc.start()

        async def load() -> tuple[float, list[float], int, float, list[float]]:
            """The lag of a tick is insert commit -> the first moment a committed checkpoint
            (``ev.checkpoint``, set right after the evaluator's commit) covers its highest seq,
            observed every 5 ms while the load runs. Also returns the committed rate while the load
            runs: the fixes (seqs) of ticks 2..n over the time from the first tick's checkpoint to
            the last one's (equal to the offered rate when the lag holds steady), and the lags in
            tick order (a lag that grows over the phase means it is falling behind)."""
            marks: list[tuple[int, float]] = []
            lags: list[float] = []
            offered: float | None = None
            deadline, i = float("inf"), 0
            while True:
                while parent.poll():
                    msg = parent.recv()
                    if msg[0] == "mark":
                        marks.append((msg[1], msg[2]))
                    else:
                        offered, deadline = msg[1], time.monotonic() + 30
                now = time.monotonic()
                while i < len(marks) and marks[i][0] <= ev.checkpoint:
                    lags.append(now - marks[i][1])
                    i += 1
                if offered is not None and (i == len(marks) or now > deadline):
                    consumed = 0.0
                    if len(lags) > 1:
                        # fixes of ticks 2..n over the time between the first and the last tick's checkpoint
                        first, last = marks[0], marks[len(lags) - 1]
                        t0, t1 = first[1] + lags[0], last[1] + lags[-1]
                        consumed = (last[0] - first[0]) / max(1e-9, t1 - t0)
                    return offered, sorted(lags), len(marks), consumed, lags
                await asyncio.sleep(0.005)

        def lag_lines(label: str, lags: list[float], n: int) -> list[str]:
            if not lags:
                return [f"{label}: no batch was checkpointed"]
            p50, p95 = statistics.median(lags), lags[min(len(lags) - 1, int(0.95 * len(lags)))]
            w = args.window
            return [
                f"{label} lag, raw (insert commit -> committed checkpoint, includes the {w:g}s reorder hold): "
                f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, batches {len(lags)}/{n}",
                f"{label} lag, evaluation only (raw minus the {w:g}s reorder hold): "
                f"p50 {max(0.0, p50 - w) * 1000:.0f} ms, p95 {max(0.0, p95 - w) * 1000:.0f} ms",
            ]

        report: list[str] = []
        if args.first_fixes:
            # every responder's first fix after the leader started: each enters every hazard it is in
            ev0 = await conn.fetchval("SELECT count(*) FROM fence_events")
            t0 = time.perf_counter()
            offered0, lags0, n0, _, _ = await load()
            ev1 = await conn.fetchval("SELECT count(*) FROM fence_events")
            parent.send("go")
            report.append(f"first-fix phase: {len(rids):,} fixes (one per responder) offered at {offered0:,.0f}/s, "
                          f"{ev1 - ev0:,} events, all committed {time.perf_counter() - t0:.1f}s after the first insert")  # fmt: skip
            report += lag_lines("first-fix phase", lags0, n0)
        ev_steady0 = await conn.fetchval("SELECT count(*) FROM fence_events")
        fixes0 = ev.engine.stats.fixes_evaluated
        t_start = time.perf_counter()
        offered, lags, n_marks, consumed_live, lags_in_order = await load()
        proc.join(10)
        consumed = (ev.engine.stats.fixes_evaluated - fixes0) / (time.perf_counter() - t_start)
        steady_events = await conn.fetchval("SELECT count(*) FROM fence_events") - ev_steady0
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
        for line in report:
            print(line)
        print(f"steady phase: offered {offered:,.0f} fixes/s for {args.seconds:g}s; evaluator consumed {consumed:,.0f} fixes/s "
              f"= {consumed / raw_rate:.2f} x raw insert ceiling; {steady_events:,} events")  # fmt: skip
        print(f"steady phase: evaluator committed {consumed_live:,.0f} fixes/s from the first tick's checkpoint to the "
              f"last one's = {consumed_live / max(1.0, offered):.3f} x offered (the figure above divides by the load's "
              f"duration plus the final drain, {args.window:g}s hold included)")  # fmt: skip
        for line in lag_lines("steady phase", lags, n_marks):
            print(line)
        if len(lags_in_order) >= 6:
            third = len(lags_in_order) // 3
            first, last = lags_in_order[:third], lags_in_order[-third:]
            print(f"steady phase lag trend (raw p50): first third of ticks {statistics.median(first) * 1000:.0f} ms, "
                  f"last third {statistics.median(last) * 1000:.0f} ms")  # fmt: skip
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
    p.add_argument(
        "--first-fixes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before the steady phase, send every responder's first fix (the enter burst), reported apart",
    )
    p.add_argument("--batch-updates", type=int, default=500, help="hazards moved together in one transaction")
    asyncio.run(main(p.parse_args()))
