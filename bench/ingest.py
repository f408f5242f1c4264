"""Ingest benchmark, in one bounded run (~2 minutes) on loopback:

1. raw ceiling: PostgreSQL-only `unnest` inserts of 100-fix batches into the same `positions`
   table of the bench database, on 2 connections, one commit per batch;
2. a real `sitrep serve` (2 workers), clients over keep-alive HTTP/1.1 (a minimal asyncio client,
   so the load generator does not eat the 2 cores httpx would):
   a. sustained 100-fix batches to `POST /v1/positions` (closed loop);
   b. one fix per OsmAnd request: closed-loop maximum, then open loop at 5,000 fixes/s (ack p95);
   c. `nearby` and `responders` p95 with 10,000 responders while OsmAnd ingest runs at 5,000/s offered,
      then while 100-fix batches arrive at 5,000 fixes/s;
   d. twice the sustainable batch load: 503s and worker RSS (memory must stay bounded).

Run: `.venv/bin/python bench/ingest.py`. Client and server share the machine's cores.
`--phases 2b` runs only the listed phases (comma separated: 1, 2a, 2b, 2c, 2d; default all); the
ratio lines need phase 1. `--profile SECONDS` records one worker with py-spy during 2b's closed loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import asyncpg
from _harness import bench_stack, cpu_seconds, rss_mb, stamp, wrk

CITY = (-91.6656, 41.9779)
N_RESPONDERS = 10_000


# -- a minimal keep-alive HTTP/1.1 client ---------------------------------------------------------
class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: str = "") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        data = await self.reader.readexactly(length) if length else b""
        return status, data


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


# -- setup ----------------------------------------------------------------------------------------
async def add_responders(url: str, n: int) -> list[dict[str, Any]]:
    """Bulk-add responders with devices and live positions (the demo seed adds 240 one by one)."""
    conn = await asyncpg.connect(url)
    try:
        team = await conn.fetchval("SELECT id FROM teams WHERE name = 'Engine 1'")
        rng = random.Random(3)
        ids = [uuid.uuid4() for _ in range(n)]
        tokens = [f"dev_{secrets.token_urlsafe(24)}" for _ in range(n)]
        uniq = [f"bench-{i:05d}" for i in range(n)]
        lons = [CITY[0] + rng.uniform(-0.15, 0.15) for _ in range(n)]
        lats = [CITY[1] + rng.uniform(-0.1, 0.1) for _ in range(n)]
        statuses = [rng.choice(("available", "available", "busy", "off_duty")) for _ in range(n)]
        from geo.h3index import cell_for

        async with conn.transaction():
            await conn.execute(
                "INSERT INTO responders (id, callsign, team_id, status) "
                "SELECT id, 'B-' || lpad(i::text, 5, '0'), $2, s FROM unnest($1::uuid[], $3::text[]) "
                "WITH ORDINALITY AS u(id, s, i)",
                ids,
                team,
                statuses,
            )
            await conn.execute(
                "INSERT INTO devices (unique_id, responder_id, token_hash) SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[])",
                uniq,
                ids,
                [hashlib.sha256(t.encode()).hexdigest() for t in tokens],
            )
            old = datetime.now(UTC) - timedelta(seconds=60)
            await conn.execute(
                "INSERT INTO latest_positions (responder_id, fix_time, received_at, seq, geom, h3, source) "
                "SELECT id, $2, $2, 0, ST_SetSRID(ST_MakePoint(lo, la), 4326), h, 'seed' "
                "FROM unnest($1::uuid[], $3::float8[], $4::float8[], $5::int8[]) AS u(id, lo, la, h)",
                ids,
                old,
                lons,
                lats,
                [cell_for(lo, la) for lo, la in zip(lons, lats, strict=True)],
            )
        await conn.execute("ANALYZE responders; ANALYZE latest_positions; ANALYZE devices")
    finally:
        await conn.close()
    return [
        {"responder_id": str(i), "token": t, "unique_id": u, "lon": lo, "lat": la}
        for i, t, u, lo, la in zip(ids, tokens, uniq, lons, lats, strict=True)
    ]


class Clock:
    """Strictly increasing fix times per device, near now."""

    def __init__(self) -> None:
        self.base = datetime.now(UTC) - timedelta(seconds=30)
        self.n: dict[str, int] = {}

    def take_ms(self, span_ms: int) -> int:
        """A block of ``span_ms`` milliseconds before every time handed out so far (for wrk runs)."""
        self.low_ms = getattr(self, "low_ms", int(self.base.timestamp() * 1000) - 1000) - span_ms
        return self.low_ms

    def next(self, key: str) -> datetime:
        k = self.n.get(key, 0)
        self.n[key] = k + 1
        return self.base + timedelta(microseconds=k * 137)


# -- 1. raw ceiling -------------------------------------------------------------------------------
async def raw_ceiling(url: str, devices: list[dict[str, Any]], seconds: float, conns: int = 2) -> float:
    from server.positions.fixes import Fix
    from server.positions.writer import columns

    sql = (
        "INSERT INTO positions (responder_id, fix_time, geom, h3, accuracy_m, speed_mps, heading_deg, altitude_m, "
        "battery_pct, source, device_id, client_id, poor_accuracy, attributes) "
        "SELECT r, t, ST_SetSRID(ST_MakePoint(lo, la), 4326), h, a, s, hd, al, b, src, d, c, p, at::jsonb FROM unnest("
        "$1::uuid[], $2::timestamptz[], $3::float8[], $4::float8[], $5::int8[], $6::float8[], $7::float8[], "
        "$8::float8[], $9::float8[], $10::float8[], $11::text[], $12::uuid[], $13::text[], $14::bool[], $15::text[]) "
        "AS u(r, t, lo, la, h, a, s, hd, al, b, src, d, c, p, at)"
    )
    base = datetime.now(UTC) - timedelta(hours=3)
    counter = [0]

    def batch() -> list[list[object]]:
        d = devices[counter[0] % len(devices)]
        fixes = []
        for _ in range(100):
            counter[0] += 1
            fixes.append(
                Fix(
                    responder_id=uuid.UUID(d["responder_id"]),
                    fix_time=base + timedelta(microseconds=counter[0]),
                    lon=d["lon"],
                    lat=d["lat"],
                    accuracy_m=5.0,
                    speed_mps=1.0,
                    heading_deg=90.0,
                    battery_pct=80.0,
                )
            )
        return columns(fixes)

    batches = [batch() for _ in range(400)]
    done = [0]

    async def worker(i: int) -> None:
        conn = await asyncpg.connect(url)
        k = i
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await conn.execute(sql, *batches[k % len(batches)])
            done[0] += 100
            k += conns
            if k >= len(batches):
                break
        await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(conns)))
    return done[0] / (time.monotonic() - started)


# -- 2a. batches over HTTP ------------------------------------------------------------------------
async def http_batches(
    port: int,
    devices: list[dict[str, Any]],
    clock: Clock,
    seconds: float,
    concurrency: int,
    rate: float | None = None,
) -> dict[str, float]:
    """100-fix batches, each from one device; closed loop, or paced at ``rate`` fixes/s in total."""
    acked = [0]
    statuses: dict[int, int] = {}
    lat: list[float] = []
    interval = None if rate is None else 100 * concurrency / rate

    async def worker(i: int) -> None:
        conn = Conn(port)
        start = time.monotonic()
        deadline = start + seconds
        k = i
        sent = 0
        while time.monotonic() < deadline:
            if interval is not None:
                due = start + (i / concurrency + sent) * interval
                sent += 1
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            d = devices[k % len(devices)]
            k += concurrency
            body = json.dumps(
                [
                    {
                        "fix_time": clock.next(d["unique_id"]).isoformat(),
                        "lon": d["lon"],
                        "lat": d["lat"],
                        "accuracy_m": 6.0,
                        "speed_mps": 1.5,
                        "battery_pct": 70.0,
                    }
                    for _ in range(100)
                ]
            ).encode()
            t0 = time.perf_counter()
            status, data = await conn.request("POST", "/v1/positions", body, f"Authorization: Bearer {d['token']}\r\n")
            lat.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                acked[0] += data.count(b'"status"')
            elif status == 503:
                await asyncio.sleep(0.05)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "fixes_per_s": acked[0] / elapsed,
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "ok": statuses.get(200, 0),
        "503": statuses.get(503, 0),
        "other": sum(v for k, v in statuses.items() if k not in (200, 503)),
    }


# -- 2b. OsmAnd, one fix per request ---------------------------------------------------------------
def osmand_path(d: dict[str, Any], when: datetime) -> str:
    return "/osmand?" + urlencode(
        {
            "id": d["unique_id"],
            "token": d["token"],
            "timestamp": f"{when.timestamp() * 1000:.3f}",
            "lat": f"{d['lat']:.6f}",
            "lon": f"{d['lon']:.6f}",
            "speed": "2.5",
            "bearing": "90",
            "accuracy": "7",
            "batt": "64",
        }
    )


async def osmand_load(
    port: int,
    devices: list[dict[str, Any]],
    clock: Clock,
    seconds: float,
    *,
    rate: float | None,
    connections: int,
    stop: asyncio.Event | None = None,
) -> dict[str, float]:
    """Closed loop (rate None) or open loop at ``rate`` requests/s (latency from the scheduled time)."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Conn(port))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    counter = [0]

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        d = devices[counter[0] % len(devices)]
        counter[0] += 1
        try:
            status, _ = await conn.request("GET", osmand_path(d, clock.next(d["unique_id"])))
        except (OSError, asyncio.IncompleteReadError):
            status = 0
            conn = Conn(port)
        pool.put_nowait(conn)
        lat.append((time.perf_counter() - scheduled) * 1000)
        statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    deadline = started + seconds
    tasks: set[asyncio.Task[None]] = set()
    if rate is None:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                await one(time.perf_counter())

        await asyncio.gather(*(loop() for _ in range(connections)))
    else:
        interval = 1.0 / rate
        n = 0
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            target = started + n * interval
            now = time.perf_counter()
            if target > now:
                await asyncio.sleep(target - now)
            # Open loop: the schedule does not wait for answers. If the server falls far behind,
            # slots are skipped (counted as not_sent) rather than queued without bound here.
            while started + n * interval <= time.perf_counter():
                if len(tasks) >= 4 * connections:
                    statuses[-1] = statuses.get(-1, 0) + 1
                else:
                    t = asyncio.create_task(one(started + n * interval))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                n += 1
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()
            statuses[-2] = len(pending)
    elapsed = time.perf_counter() - started
    return {
        "fixes_per_s": statuses.get(200, 0) / elapsed,
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "p99_ms": pct(lat, 99),
        "ok": statuses.get(200, 0),
        "503": statuses.get(503, 0),
        "other": sum(v for k, v in statuses.items() if k not in (200, 503, -1, -2)),
        "not_sent": statuses.get(-1, 0),
        "unanswered": statuses.get(-2, 0),
    }


_OSMAND_LUA = """
local devs = {%s}
local n = #devs
local i = 0
local base = %d
local interval = %s
request = function()
  i = i + 1
  local d = devs[(i %% n) + 1]
  return wrk.format("GET", "/osmand?id=" .. d[1] .. "&token=" .. d[2] .. "&timestamp=" .. (base + math.floor(i / n))
    .. "&lat=" .. d[3] .. "&lon=" .. d[4] .. "&speed=2.5&bearing=90&accuracy=7&batt=64")
end
%s
"""

# Pacing for wrk (LuaJIT: a monotonic clock through the FFI). One schedule for the thread: the k-th
# paced request is due at start + k * interval, whichever connection is free asks for it; a schedule
# more than 100 ms behind skips the missed slots (the achieved rate shows it).
_PACED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } sitrep_timespec;
int clock_gettime(int clk_id, sitrep_timespec *tp);
]]
local ts = ffi.new("sitrep_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local due = nil
delay = function()
  local now = now_ms()
  if due == nil or due < now - 100 then due = now end
  local wait = due - now
  due = due + interval
  if wait < 0 then return 0 end
  return wait
end
"""


def osmand_wrk(
    url: str, devices: list[dict[str, Any]], clock: Clock, seconds: int, connections: int, rate: float | None
) -> dict[str, float]:
    """OsmAnd load from wrk (C, one thread): the load generator costs far less CPU than Python.

    Closed loop when ``rate`` is None; otherwise paced on one schedule of ``rate`` requests/s
    (``_PACED_LUA``; up to ``connections`` in flight, so it offers ``rate`` while
    ``rate x latency < connections``). Until 2026-11-26 each connection paused ``connections / rate``
    after its answer, which offered ``rate`` only with instant answers (128 connections and 20 ms
    answers offered ~2,800/s, not 5,000). The achieved rate is printed, never assumed. Each device's
    timestamps advance by one millisecond per request, from a base in the past, so no fix is a duplicate.
    """
    devs = ",".join(f'{{"{d["unique_id"]}","{d["token"]}","{d["lat"]:.6f}","{d["lon"]:.6f}"}}' for d in devices)
    base = clock.take_ms(seconds * 20_000 // max(1, len(devices)) + 1000)
    interval = "nil" if rate is None else f"{1000 / rate:.6f}"
    lua = _OSMAND_LUA % (devs, base, interval, "" if rate is None else _PACED_LUA)
    out = wrk(f"{url}/osmand", seconds=seconds, connections=connections, lua_extra=lua)
    return {
        "fixes_per_s": out["rps"] * (1 - (out["non2xx"] / max(1.0, out["rps"] * seconds))),
        "p50_ms": out["p50_ms"],
        "p95_ms": out["p95_ms"],
        "p99_ms": out["p99_ms"],
        "errors": out["errors"] + out["non2xx"],
    }


# -- 2c. queries under ingest ----------------------------------------------------------------------
async def queries_during(
    load: Coroutine[Any, Any, dict[str, Any]], port: int, token: str
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """``query_latency`` for 8 s while ``load`` (9 s of ingest) runs: (query results, the load's result)."""
    ingest = asyncio.create_task(load)
    await asyncio.sleep(0.5)
    q = await query_latency(port, token, seconds=8)
    return q, await ingest


async def query_latency(port: int, token: str, seconds: float) -> dict[str, dict[str, float]]:
    rng = random.Random(5)
    out: dict[str, list[float]] = {"nearby": [], "responders": []}
    auth = f"Authorization: Bearer {token}\r\n"
    bad = [0]

    async def loop(kind: str) -> None:
        conn = Conn(port)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lon = CITY[0] + rng.uniform(-0.1, 0.1)
            lat = CITY[1] + rng.uniform(-0.07, 0.07)
            if kind == "nearby":
                path = f"/v1/responders/nearby?lon={lon:.5f}&lat={lat:.5f}&radius_m=2000&limit=20"
            else:
                path = f"/v1/responders?limit=100&bbox={lon - 0.02:.5f},{lat - 0.015:.5f},{lon + 0.02:.5f},{lat + 0.015:.5f}"
            t0 = time.perf_counter()
            status, _ = await conn.request("GET", path, headers=auth)
            out[kind].append((time.perf_counter() - t0) * 1000)
            if status != 200:
                bad[0] += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(loop("nearby"), loop("responders"))
    return {k: {"n": len(v), "p50_ms": pct(v, 50), "p95_ms": pct(v, 95), "errors": bad[0]} for k, v in out.items()}


async def login(port: int) -> str:
    status, data = await Conn(port).request(
        "POST", "/v1/auth/token", json.dumps({"username": "admin", "password": "sitrep-demo"}).encode()
    )
    assert status == 200, data
    return json.loads(data)["access_token"]  # type: ignore[no-any-return]


def fmt(d: dict[str, float]) -> str:
    return " ".join(f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


async def main(phases: set[str], profile_s: int = 0, extra_env: dict[str, str] | None = None) -> None:
    print(
        f"# bench/ingest  {stamp()}  cores={os.cpu_count()}  loadavg={os.getloadavg()[0]:.1f} (other work on the box)"
        f"  phases={','.join(sorted(phases))}{''.join(f'  {k}={v}' for k, v in (extra_env or {}).items())}"
    )
    with bench_stack("ingest", workers=2, SITREP_LOG_LEVEL="ERROR", **(extra_env or {})) as (server, env):  # type: ignore[arg-type]
        url = env["SITREP_DATABASE_URL"]
        t0 = time.monotonic()
        devices = await add_responders(url, N_RESPONDERS)
        print(f"setup: {N_RESPONDERS} extra responders with devices and live positions in {time.monotonic() - t0:.1f}s")
        raw = float("nan")
        if "1" in phases:
            raw = await raw_ceiling(url, devices, seconds=8)
            print(f"1. raw ceiling (unnest, 100-fix batches, 2 connections, commit per batch): {raw:,.0f} fixes/s")
        clock = Clock()
        port = server.port
        token = await login(port)
        rss0 = rss_mb(server.proc.pid)
        # Trackers report every few seconds: 2,000 devices at 5,000 fixes/s each report every 0.4 s,
        # so the per-worker device-token and responder caches are warm after the first pass.
        active = devices[:2000]

        if "2a" in phases:
            batch = await http_batches(port, active, clock, seconds=10, concurrency=16)
            print(f"2a. HTTP 100-fix batches (16 clients): {fmt(batch)}")
            print(f"    ratio to raw: {batch['fixes_per_s'] / raw:.2f}  (target >= 15,000 fixes/s and >= 0.5)")

        if "2b" in phases:
            pid = server.proc.pid
            if "2a" not in phases:  # 2a leaves the device-token caches warm; without it, warm them here
                await asyncio.to_thread(osmand_wrk, server.url, active, clock, 3, 64, None)
            profiler = _start_profile(pid, profile_s, PROFILE_SVG) if profile_s else None
            peak, cpu, client = await _measured(pid, osmand_wrk, server.url, active, clock, 8, 64, None)
            print(f"2b. OsmAnd one fix/request, wrk closed loop (64 conns): {fmt(peak)}  server CPU {cpu:.2f} cores")
            print(f"    {_per_request(peak, cpu, client)}")
            if profiler is not None:
                profiler.wait()
                print(f"    py-spy profile of one worker: {PROFILE_SVG}")
            profiler = _start_profile(pid, profile_s, PROFILE_PACED) if profile_s else None
            steady, cpu, client = await _measured(pid, osmand_wrk, server.url, active, clock, 8, 256, 5000.0)
            if profiler is not None:
                profiler.wait()
                print(f"    py-spy profile of one worker (paced): {PROFILE_PACED}")
            print(f"    OsmAnd paced at 5,000/s offered (256 conns): {fmt(steady)}  (target: 5,000/s, p95 < 50 ms)")
            print(f"    server CPU {cpu:.2f} cores; {_per_request(steady, cpu, client)}")
            print(f"    ratio to raw: {peak['fixes_per_s'] / raw:.2f}")
            py = await osmand_load(port, active, clock, 5, rate=None, connections=64)
            print(f"    (the same from the Python asyncio client, closed loop: {fmt(py)})")

        if "2c" in phases:
            q, bg = await queries_during(
                asyncio.to_thread(osmand_wrk, server.url, active, clock, 9, 128, 5000.0), port, token
            )
            print(
                f"2c. queries with {N_RESPONDERS + 240} responders while OsmAnd ingest runs"
                f" (achieved {bg['fixes_per_s']:,.0f}/s):"
            )
            for k, v in q.items():
                print(f"    {k}: {fmt(v)}  (target p95 < 20 ms)")
            # The same queries while 5,000 fixes/s arrive the way a fleet gateway or the devices WebSocket
            # delivers them: 100-fix batches, paced (50 requests/s).
            q, bg = await queries_during(
                http_batches(port, active, clock, seconds=9, concurrency=5, rate=5000.0), port, token
            )
            print(
                f"    the same while 100-fix batches arrive at 5,000 fixes/s offered (achieved {bg['fixes_per_s']:,.0f}/s,"
                f" p95 ack {bg['p95_ms']:,.1f} ms):"
            )
            for k, v in q.items():
                print(f"    {k}: {fmt(v)}  (target p95 < 20 ms)")

        if "2d" in phases:
            rss_before = rss_mb(server.proc.pid)
            over = asyncio.create_task(http_batches(port, active, clock, seconds=8, concurrency=64))
            samples = []
            for _ in range(7):
                await asyncio.sleep(1)
                samples.append(rss_mb(server.proc.pid))
            o = await over
            print(f"2d. overload (64 clients of 100-fix batches, ~4x the clients of 2a): {fmt(o)}")
            print(
                f"    server RSS (all processes): start {rss0:,.0f} MB, before {rss_before:,.0f} MB, "
                f"during max {max(samples):,.0f} MB, after {rss_mb(server.proc.pid):,.0f} MB"
            )
        conn = await asyncpg.connect(url)
        stored = await conn.fetchval("SELECT count(*) FROM positions")
        await conn.close()
        print(f"positions rows at the end: {stored:,}  loadavg={os.getloadavg()[0]:.1f}")


PHASES = ("1", "2a", "2b", "2c", "2d")
PROFILE_SVG = "/tmp/sitrep-bench-ingest-osmand.txt"  # collapsed stacks (py-spy --format raw)
PROFILE_PACED = "/tmp/sitrep-bench-ingest-osmand-paced.txt"


async def _measured(pid: int, fn: Any, *args: Any) -> tuple[dict[str, float], float, float]:
    """``fn(*args)`` in a thread, with the server's CPU (cores) and the client's (wrk: waited-for children);
    prints the bench database's backends' CPU and the group commits (from /metrics) too."""
    url = args[0]
    db0, m0, box0 = _db_cpu(), await asyncio.to_thread(_flush_metrics, url), _box_busy()
    c0, k0, t0 = cpu_seconds(pid), _children_cpu(), time.monotonic()
    out = await asyncio.to_thread(fn, *args)
    elapsed = time.monotonic() - t0
    server, client = (cpu_seconds(pid) - c0) / elapsed, (_children_cpu() - k0) / elapsed
    db = sum(v - db0.get(k, 0.0) for k, v in _db_cpu().items()) / elapsed
    box = (_box_busy() - box0) / elapsed
    m1 = await asyncio.to_thread(_flush_metrics, url)
    flushes = max(1.0, m1["flushes"] - m0["flushes"])
    print(
        f"    (CPU: server {server:.2f}, wrk {client:.2f}, PostgreSQL backends of the bench db {db:.2f},"
        f" whole machine {box:.2f} of {os.cpu_count()} cores, other processes {max(0.0, box - server - client - db):.2f};"
        f" group commits {flushes / elapsed:,.0f}/s, {(m1['fixes'] - m0['fixes']) / flushes:,.1f} fixes and"
        f" {(m1['seconds'] - m0['seconds']) / flushes * 1000:,.1f} ms each)"
    )
    return out, server, client


def _flush_metrics(url: str) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out = {"flushes": 0.0, "fixes": 0.0, "seconds": 0.0}
    for line in text.splitlines():
        if line.startswith("sitrep_ingest_flush_seconds_count"):
            out["flushes"] += float(line.split()[-1])
        elif line.startswith("sitrep_ingest_flush_seconds_sum"):
            out["seconds"] += float(line.split()[-1])
        elif line.startswith("sitrep_ingest_flush_fixes_sum"):
            out["fixes"] += float(line.split()[-1])
    return out


def _box_busy() -> float:
    """Busy CPU seconds of the whole machine (every process, ours and others')."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _db_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving this bench's database."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"sitrep_bench_ingest_{os.getpid()} ".encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(proc.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _per_request(out: dict[str, float], server_cores: float, client_cores: float) -> str:
    rps = max(1.0, out["fixes_per_s"])
    return (
        f"server CPU per request {server_cores / rps * 1e6:,.0f} us; "
        f"client (wrk) CPU {client_cores:.2f} cores ({client_cores / rps * 1e6:,.0f} us/request)"
    )


def _start_profile(pid: int, seconds: int, out: str) -> Any:
    """py-spy on the first worker (a child of uvicorn's supervisor) for ``seconds``."""
    import subprocess

    from _harness import _children

    workers = [p for p in _children(pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
    target = workers[0] if workers else pid
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "-p",
            str(target),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-o",
            out,
            "--format",
            "raw",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


if __name__ == "__main__":
    import argparse

    import uvloop

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of 1,2a,2b,2c,2d")
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS", help="py-spy one worker during 2b")
    parser.add_argument("--env", action="append", default=[], metavar="SITREP_X=V", help="server setting (repeatable)")
    args = parser.parse_args()
    chosen = {p.strip() for p in args.phases.split(",") if p.strip()}
    if chosen - set(PHASES):
        parser.error(f"unknown phases {sorted(chosen - set(PHASES))}; known: {', '.join(PHASES)}")
    uvloop.install()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    asyncio.run(main(chosen, args.profile, extra_env))
