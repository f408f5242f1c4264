"""Dispatch and incident-search benchmark.

A throwaway database + Redis + `sitrep serve` (2 workers), then bulk data written straight into
PostgreSQL (as ingest and a long operation would leave it): 10,000 responders with fresh latest
positions over ~60 × 60 km, 200 active hazards (geodesic circles, 200 m – 1.5 km), 100,000
incidents with text from a small vocabulary spread over 90 days.

Measured from one client over loopback (latency, not throughput):
* ``GET /v1/incidents/{id}/recommendations`` p50/p95 (target p95 < 50 ms), optionally while a
  separate process offers 5,000 fixes/s to ``POST /v1/positions`` (``--ingest-rate``, 0 to disable) in
  250-fix batches started on a fixed schedule, up to 8 in flight; offered and accepted rates are printed;
* ``GET /v1/incidents?q=…`` (the list filtered by a search, newest first, first page of 50) p50/p95
  over 100,000 incidents (target p95 < 30 ms), the same with status + priority filters, and
  ``sort=relevance`` (ranked among the most recent 1,000 matches; no target);
* the raw ceilings in the same run: ``GET /health`` (the HTTP floor) and the list's own SQL
  (``server.incidents.search.build_sql``) run directly through asyncpg (the database floor), with our
  figure's ratio to each.

Bounded: about two minutes. Run: ``.venv/bin/python bench/dispatch.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import msgspec
import shapely

import bench._harness  # noqa: F401  (puts the repository on sys.path)
from geo.geodesy import point_buffer
from geo.h3index import cells_for
from tests.conftest import (
    DEMO_PASSWORD,
    create_database,
    drop_database,
    run_cli,
    sitrep_env,
    start_redis,
    start_server,
)

CENTER = (-93.6, 41.6)
SPAN = 0.35  # degrees either side (~60 km across)
WORDS = (
    "fire smoke structure vehicle crash injury flood water basement river rescue trapped chemical leak odour "
    "gas power line down tree road blocked cardiac arrest fall elderly child missing hiker boat capsized "
    "alarm kitchen garage barn wildfire grass brush hazmat spill tanker bridge ice storm hail tornado shelter"
).split()
TYPES = ("fire", "medical", "flood", "rescue", "hazmat", "traffic", "other")
SKILLS = ("firefighting", "ems-basic", "ems-advanced", "swiftwater", "rope-rescue", "hazmat")
QUERIES = (
    "chemical leak",
    "cardiac arrest",
    '"power line"',
    "boat capsized river",
    "smoke -wildfire",
    "tornado shelter",
)


@contextmanager
def stack(workers: int = 2) -> Iterator[tuple[Any, dict[str, str]]]:
    """Database + Redis + server like ``bench._harness.bench_stack``, with a patient start on a busy machine."""
    tmp = Path(tempfile.mkdtemp(prefix="sitrep-bench-dispatch-"))
    db_name = f"sitrep_bench_dispatch_{os.getpid()}"
    url = create_database(db_name)
    redis = start_redis(tmp / "redis")
    env = sitrep_env(url, redis.url, tmp, SITREP_RATE_LIMIT_PER_MIN="0")
    started: list[Any] = []
    try:
        run_cli(env, "migrate")
        run_cli(env, "seed-demo")
        yield (lambda: started.append(start_server(env, tmp, workers=workers, timeout=120)) or started[0]), env
    except BaseException:
        log = next(tmp.glob("server-*.log"), None)
        if log is not None:
            print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        for server in started:
            server.stop()
        redis.stop()
        drop_database(db_name)
        shutil.rmtree(tmp, ignore_errors=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def load(url: str, rng: random.Random) -> list[uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        t0 = time.perf_counter()
        n = 10_000
        ids = [uuid.uuid4() for _ in range(n)]
        lons = [CENTER[0] + rng.uniform(-SPAN, SPAN) for _ in range(n)]
        lats = [CENTER[1] + rng.uniform(-SPAN, SPAN) for _ in range(n)]
        cells = cells_for(lons, lats).tolist()
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO responders (id, callsign, skills, status) SELECT id, 'B-' || ord, ARRAY[skill], "
            "CASE WHEN ord % 10 = 0 THEN 'busy' ELSE 'available' END "
            "FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS t(id, skill, ord)",
            ids,
            [SKILLS[i % len(SKILLS)] for i in range(n)],
        )
        await conn.execute(
            "INSERT INTO latest_positions (responder_id, fix_time, received_at, seq, geom, h3, accuracy_m, source) "
            "SELECT id, $4, $4, nextval('positions_seq'), ST_SetSRID(ST_MakePoint(lon, lat), 4326), h3, 10, 'bench' "
            "FROM unnest($1::uuid[], $2::float8[], $3::float8[], $5::bigint[]) AS t(id, lon, lat, h3)",
            ids,
            lons,
            lats,
            now,
            cells,
        )
        t1 = time.perf_counter()
        wkbs = []
        for _ in range(200):
            poly = point_buffer(
                CENTER[0] + rng.uniform(-SPAN, SPAN),
                CENTER[1] + rng.uniform(-SPAN, SPAN),
                rng.uniform(200, 1500),
                segments=32,
            )
            wkbs.append(shapely.to_wkb(poly))
        await conn.execute(
            "INSERT INTO hazards (kind, severity, title, geom, h3_res, status, valid_until) "
            "SELECT 'flood', 'severe', 'bench hazard ' || ord, ST_GeomFromWKB(w, 4326), 9, 'active', now() + interval '1 day' "
            "FROM unnest($1::bytea[]) WITH ORDINALITY AS t(w, ord)",
            wkbs,
        )
        t2 = time.perf_counter()
        m = 100_000
        ilons = [CENTER[0] + rng.uniform(-SPAN, SPAN) for _ in range(m)]
        ilats = [CENTER[1] + rng.uniform(-SPAN, SPAN) for _ in range(m)]
        titles = [" ".join(rng.sample(WORDS, 3)) for _ in range(m)]
        descs = [" ".join(rng.choices(WORDS, k=12)) for _ in range(m)]
        await conn.execute(
            "INSERT INTO incidents (type, priority, status, title, description, geom, h3, created_at) "
            "SELECT ty, pr, st, ti, de, ST_SetSRID(ST_MakePoint(lon, lat), 4326), h3, now() - make_interval(secs => age) "
            "FROM unnest($1::text[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], "
            "$8::bigint[], $9::float8[]) AS t(ty, pr, st, ti, de, lon, lat, h3, age)",
            [rng.choice(TYPES) for _ in range(m)],
            [rng.randint(1, 4) for _ in range(m)],
            [rng.choice(("closed", "closed", "closed", "resolved", "reported")) for _ in range(m)],
            titles,
            descs,
            ilons,
            ilats,
            cells_for(ilons, ilats).tolist(),
            [rng.uniform(0, 90 * 86400) for _ in range(m)],
        )
        # as autovacuum leaves a table that grew over weeks: statistics, visibility map, GIN pending list merged
        await conn.execute("VACUUM ANALYZE")
        t3 = time.perf_counter()
        print(
            f"load: 10,000 responders+positions {t1 - t0:.1f} s, 200 hazards {t2 - t1:.1f} s, 100,000 incidents {t3 - t2:.1f} s"
        )
        return ids
    finally:
        await conn.close()


async def timed(
    client: httpx.AsyncClient, n: int, make: Any, headers: dict[str, str], budget_s: float = 45.0
) -> list[float]:
    """Sequential timed GETs: ``n`` of them, or fewer when ``budget_s`` runs out (bounded run)."""
    out: list[float] = []
    deadline = time.perf_counter() + budget_s
    for i in range(n):
        if time.perf_counter() > deadline:
            break
        path, params = make(i)
        t = time.perf_counter()
        r = await client.get(path, params=params, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
    return out


async def _ingest_loop(
    base_url: str,
    token: str,
    ids: list[str],
    rate: int,
    batch: int,
    in_flight: int,
    stop: Any,
    seed: int,
) -> tuple[int, int, float]:
    """Offer ``rate`` fixes/s as ``batch``-fix POSTs started on a fixed schedule, up to ``in_flight`` at once
    (a slow answer does not lower the offered rate until that many are waiting). Returns (offered,
    accepted, seconds)."""
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    accepted = offered = 0
    slots = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def post(client: httpx.AsyncClient, body: bytes) -> None:
        nonlocal accepted
        try:
            r = await client.post("/v1/positions", content=body, headers=headers)
            if r.status_code == 200:
                accepted += len(msgspec.json.decode(r.content)["accepted"])
        finally:
            slots.release()

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        start = time.perf_counter()
        n = 0
        while not stop.is_set():
            due = start + n * batch / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            await slots.acquire()
            now = datetime.now(UTC)
            items = [
                {
                    "responder_id": rid,
                    "fix_time": (now - timedelta(milliseconds=rng.randint(0, 500))).isoformat(),
                    "lon": CENTER[0] + rng.uniform(-SPAN, SPAN),
                    "lat": CENTER[1] + rng.uniform(-SPAN, SPAN),
                    "accuracy_m": 10,
                }
                for rid in rng.sample(ids, batch)
            ]
            task = asyncio.create_task(post(client, encoder.encode(items)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            offered += batch
            n += 1
        elapsed = time.perf_counter() - start
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    return offered, accepted, elapsed


def ingest_process(base_url: str, token: str, ids: list[str], rate: int, stop: Any, out: Any) -> None:
    """The ingest load generator, in its own process so that building and sending batches never delays
    the timed requests (nor is limited by the measuring client's event loop)."""
    out.put(asyncio.run(_ingest_loop(base_url, token, ids, rate, 250, 8, stop, 11)))


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(11)
    with stack() as (start, env):
        ids = await load(env["SITREP_DATABASE_URL"], rng)
        server = start()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            tok = (await client.post("/v1/auth/token", json={"username": "admin", "password": DEMO_PASSWORD})).json()[
                "access_token"
            ]
            h = {"Authorization": f"Bearer {tok}"}
            incidents = []
            for i in range(40):
                lon, lat = (
                    CENTER[0] + rng.uniform(-SPAN * 0.8, SPAN * 0.8),
                    CENTER[1] + rng.uniform(-SPAN * 0.8, SPAN * 0.8),
                )
                r = await client.post(
                    "/v1/incidents",
                    json={
                        "type": TYPES[i % 6],
                        "priority": 1,
                        "title": f"bench {i}",
                        "location": {"type": "Point", "coordinates": [lon, lat]},
                    },
                    headers=h,
                )
                incidents.append(r.json()["id"])
            print("created 40 incidents; warming up", flush=True)
            await timed(client, 40, lambda i: (f"/v1/incidents/{incidents[i % 40]}/recommendations", {"limit": 10}), h)
            await timed(client, 30, lambda i: ("/v1/incidents", {"q": QUERIES[i % len(QUERIES)], "limit": 50}), h)

            # positions are as fresh as continuous ingest keeps them (loading and starting took minutes)
            fresh = await asyncpg.connect(env["SITREP_DATABASE_URL"])
            await fresh.execute("UPDATE latest_positions SET fix_time = now(), stale = false")
            await fresh.close()
            health = await timed(client, args.n, lambda i: ("/health", {}), h)
            print("measuring recommendations", flush=True)
            ctx = multiprocessing.get_context("spawn")
            stop, results = ctx.Event(), ctx.Queue()
            ingest = None
            if args.ingest_rate > 0:
                ingest = ctx.Process(
                    target=ingest_process,
                    args=(server.url, tok, [str(i) for i in ids], args.ingest_rate, stop, results),
                    daemon=True,
                )
                ingest.start()
                await asyncio.sleep(3.0)  # the child imports and reaches its pace
            recs = await timed(
                client, args.n, lambda i: (f"/v1/incidents/{incidents[i % 40]}/recommendations", {"limit": 10}), h
            )
            offered_rate = ingest_rate = 0.0
            if ingest is not None:
                stop.set()
                offered, accepted, ingest_s = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: results.get(timeout=60)
                )
                ingest.join(timeout=10)
                offered_rate, ingest_rate = offered / ingest_s, accepted / ingest_s
                # the search has no ingest in its target: let the fence evaluator and stream catch up first
                settle = time.perf_counter() + 30
                while time.perf_counter() < settle:
                    if statistics.median(await timed(client, 20, lambda i: ("/health", {}), h)) < 2 * statistics.median(
                        health
                    ):
                        break
                    await asyncio.sleep(1.0)
            search = await timed(
                client, args.n, lambda i: ("/v1/incidents", {"q": QUERIES[i % len(QUERIES)], "limit": 50}), h
            )
            relevance = await timed(
                client,
                args.n // 2,
                lambda i: ("/v1/incidents", {"q": QUERIES[i % len(QUERIES)], "sort": "relevance", "limit": 50}),
                h,
            )
            filtered = await timed(
                client,
                args.n // 2,
                lambda i: (
                    "/v1/incidents",
                    {"q": QUERIES[i % len(QUERIES)], "status": "reported", "priority": "1,2", "limit": 50},
                ),
                h,
            )
            sample = (
                await client.get(f"/v1/incidents/{incidents[0]}/recommendations", params={"limit": 3}, headers=h)
            ).json()

        conn = await asyncpg.connect(env["SITREP_DATABASE_URL"])
        try:
            from server.incidents.search import IncidentQuery, build_sql, fetch, search_hint

            async def raw_sql(n: int, sort: str) -> list[float]:
                out = []
                for i in range(n):
                    sql_args: list[Any] = []
                    query = IncidentQuery(q=QUERIES[i % len(QUERIES)], limit=50, sort=sort)
                    # the plan the server picks (its statistics are cached per worker, so not timed)
                    sql = build_sql(query, "TRUE", sql_args, hint=await search_hint(conn, query))
                    t = time.perf_counter()
                    await fetch(conn, sql, sql_args)
                    out.append((time.perf_counter() - t) * 1000)
                return out

            raw = await raw_sql(args.n, "recent")
            raw_relevance = await raw_sql(args.n // 2, "relevance")
            matches = {
                q: await conn.fetchval(
                    "SELECT count(*) FROM incidents WHERE search @@ websearch_to_tsquery('english', $1)", q
                )
                for q in QUERIES
            }
        finally:
            await conn.close()

    def line(name: str, xs: list[float]) -> str:
        return f"{name:<44} p50 {statistics.median(xs):7.2f} ms   p95 {pct(xs, 95):7.2f} ms   (n={len(xs)})"

    print(line("GET /health (HTTP floor)", health), flush=True)
    ingest_note = f", ingest {ingest_rate:,.0f} fixes/s in parallel" if args.ingest_rate else ", no ingest"
    if args.ingest_rate:
        print(
            f"ingest load (separate process, 250-fix batches, <= 8 in flight): offered {offered_rate:,.0f} fixes/s, "
            f"accepted {ingest_rate:,.0f} fixes/s"
        )
    print(line(f"recommendations, limit 10{ingest_note}", recs))
    print(line("incident list q= newest first (100k)", search))
    print(line("incident list q= + status + priority", filtered))
    print(line("raw SQL of the list q= (database floor)", raw))
    print(line("incident search q= sort=relevance", relevance))
    print(line("raw SQL of sort=relevance", raw_relevance))
    print(f"search matches per query: {matches}")
    print(
        f"ratios: recommendations p95 / health p95 = {pct(recs, 95) / pct(health, 95):.1f}x; "
        f"search p95 / raw SQL p95 = {pct(search, 95) / pct(raw, 95):.2f}x; "
        f"relevance p95 / its raw SQL p95 = {pct(relevance, 95) / pct(raw_relevance, 95):.2f}x"
    )
    print(
        f"targets: recommendations p95 < 50 ms: {'PASS' if pct(recs, 95) < 50 else 'FAIL'} ({pct(recs, 95):.1f} ms); "
        f"list with search p95 < 30 ms: {'PASS' if pct(search, 95) < 30 else 'FAIL'} ({pct(search, 95):.1f} ms)"
    )
    top = sample["items"][0] if sample["items"] else {}
    print(
        f"sample: {sample['candidates_considered']} candidates within {sample['searched_radius_m']:.0f} m, "
        f"{sample['hazards_considered']} hazards near; top: {top.get('reasons')}"
    )


def main() -> None:
    # a SIGTERM (e.g. from `timeout`) unwinds normally, so the server, Redis and database are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="requests per measurement")
    parser.add_argument(
        "--ingest-rate", type=int, default=5000, help="fixes/s posted during the recommendations run (0: none)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
