"""Stream benchmark (bounded, loopback): raw `websockets.broadcast` ceiling vs the sitrep stream.

    .venv/bin/python bench/stream.py [--viewers 1000] [--rate 2000] [--duration 15] [--city-viewers 5000]

1. raw ceiling: a bare websockets server broadcasting a ~300-byte frame as fast as it can to N
   sockets (server and clients in separate processes, like the sitrep run) → frames/s delivered;
2. sitrep, 2 workers, N viewers on the whole map (positions, 10 Hz) while 2,000 responders send
   2,000 fixes/s in total (coordinator batches) → fix-accepted → frame-received latency
   p50/p95/p99, drops, server CPU; viewers land on both workers and fixes are ingested on both, so
   most frames cross workers through Redis;
3. sitrep, city-sized subscriptions at 4 ticks/s with as many viewers as the machine holds.
Throw-away database, Redis and servers; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FRAME = json.dumps(
    {
        "type": "delta",
        "epoch": "e",
        "seq": 1,
        "items": [{"topic": "positions", "key": "x" * 36, "data": {"lon": -91.6, "lat": 41.9}, "accepted_at": 0.0}] * 2,
    }
)


# ---- raw ceiling -------------------------------------------------------------------------------
async def _raw_server(port: int, n: int, seconds: float) -> None:
    from websockets.asyncio.server import broadcast, serve

    clients: set = set()
    ready = asyncio.Event()

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        clients.add(ws)
        if len(clients) >= n:
            ready.set()
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        await asyncio.wait_for(ready.wait(), 120)
        end = time.time() + seconds
        sent = 0
        while time.time() < end:
            broadcast(clients, FRAME)
            sent += 1
            await asyncio.sleep(0)  # let the transport write
        for ws in list(clients):
            await ws.close()
        print(json.dumps({"broadcasts": sent}), flush=True)


async def _raw_clients(port: int, n: int, seconds: float) -> None:
    from websockets.asyncio.client import connect

    counts = [0]
    started: list[float] = []

    async def one() -> None:
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, max_size=None) as ws:
            async for _ in ws:
                if not started:
                    started.append(time.time())
                counts[0] += 1

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one()))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.wait(tasks, timeout=seconds + 60)
    elapsed = time.time() - started[0] if started else 1
    print(json.dumps({"frames": counts[0], "elapsed": elapsed}), flush=True)


def raw_ceiling(n: int, seconds: float) -> float:
    from tests.conftest import free_port

    port = free_port()
    srv = subprocess.Popen(
        [sys.executable, __file__, "--raw-server", str(port), str(n), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    cli = subprocess.run(
        [sys.executable, __file__, "--raw-clients", str(port), str(n), str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 150,
    )
    srv.wait(30)
    got = json.loads(cli.stdout.strip().splitlines()[-1])
    return float(got["frames"]) / max(got["elapsed"], 1e-3)


# ---- sitrep ------------------------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
    except psutil.Error:
        pass
    return total


async def _ingest(url: str, token: str, devices: list[dict[str, str]], rate: int, seconds: float) -> int:
    import httpx

    per_post = 100
    failures: list[str] = []
    posts_per_s = max(1, rate // per_post)
    sent = 0
    state = {d["responder_id"]: [float(d["lon"]), float(d["lat"])] for d in devices}
    ids = list(state)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        end = time.time() + seconds
        tick = 0
        while time.time() < end:
            t0 = time.time()
            batch_jobs = []
            for _ in range(posts_per_s):
                items = []
                for _ in range(per_post):
                    rid = ids[tick % len(ids)]
                    tick += 1
                    pos = state[rid]
                    pos[0] += 0.0001
                    items.append(
                        {
                            "responder_id": rid,
                            "fix_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                            "lon": pos[0],
                            "lat": pos[1],
                            "accuracy_m": 5.0,
                        }
                    )
                batch_jobs.append(c.post("/v1/positions", json=items))
                await asyncio.sleep(1.0 / posts_per_s / 2)
            for r in await asyncio.gather(*batch_jobs, return_exceptions=True):
                if not isinstance(r, BaseException) and r.status_code == 200:
                    sent += per_post
                else:
                    failures.append(repr(r) if isinstance(r, BaseException) else f"{r.status_code} {r.text[:200]}")
            await asyncio.sleep(max(0.0, 1.0 - (time.time() - t0)))
    if failures:
        print(f"  ingest: {len(failures)} posts failed, e.g. {failures[0]}", flush=True)
    return sent


async def _login(url: str, user: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        r = await c.post("/v1/auth/token", json={"username": user, "password": "sitrep-demo"})
        r.raise_for_status()
        return str(r.json()["access_token"])


def sitrep_phase(server, devices, viewers: int, area: str, rate_hz: float, fixes_per_s: int, seconds: float) -> dict:  # type: ignore[no-untyped-def]
    token = asyncio.run(_login(server.url, "coord"))
    driver = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "loadtests" / "ws_driver.py"),
            "--url",
            server.ws_url,
            "--viewers",
            str(viewers),
            "--duration",
            str(seconds + 8),
            "--area",
            area,
            "--rate",
            str(rate_hz),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(min(8.0, 2 + viewers / 400))  # sockets connect and take their snapshots
    cpu0, t0 = _cpu_seconds(server.proc.pid), time.time()
    sent = asyncio.run(_ingest(server.url, token, devices, fixes_per_s, seconds))
    cpu = (_cpu_seconds(server.proc.pid) - cpu0) / (time.time() - t0)
    out, err = driver.communicate(timeout=seconds + 120)
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-2000:]}
    result["fixes_per_s"] = round(sent / seconds)
    result["server_cpu_cores"] = round(cpu, 2)
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--raw-server", "--raw-clients"):
        import uvloop

        port, n, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        uvloop.run((_raw_server if sys.argv[1] == "--raw-server" else _raw_clients)(port, n, seconds))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--responders", type=int, default=2000)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--city-viewers", type=int, default=5000)
    args = p.parse_args()

    from tests.conftest import create_database, drop_database, run_cli, sitrep_env, start_redis, start_server

    started = time.time()
    print(f"raw ceiling: websockets.broadcast to {args.viewers} sockets ...", flush=True)
    raw = raw_ceiling(args.viewers, 8)
    print(f"  raw broadcast: {raw:,.0f} frames/s delivered to {args.viewers} sockets", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="sitrep-bench-stream-"))
    name = f"sitrep_bench_stream_{os.getpid()}"
    redis = start_redis(tmp / "redis")
    url = create_database(name)
    server = None
    try:
        env = sitrep_env(url, redis.url, tmp / "state", SITREP_RATE_LIMIT_PER_MIN="1000000")
        run_cli(env, "migrate")
        run_cli(env, "seed-demo", "--responders", str(args.responders))
        devices = json.loads((tmp / "state" / "demo-devices.json").read_text())
        server = start_server(env, tmp, workers=2, timeout=120)
        print(f"setup {time.time() - started:.0f}s; sitrep with 2 workers", flush=True)

        whole = sitrep_phase(server, devices, args.viewers, "whole", 10, args.rate, args.duration)
        lat = whole.get("latency_ms", {})
        print(
            f"  whole map: {args.viewers} viewers, {whole.get('fixes_per_s')} fixes/s: {whole.get('frames_per_s')} frames/s "
            f"({whole.get('frames_per_s', 0) / raw:.1%} of raw), latency p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms "
            f"p99 {lat.get('p99')} ms, drops {whole.get('drops')}, closes {whole.get('closes')}, server CPU "
            f"{whole.get('server_cpu_cores')} cores",
            flush=True,
        )
        city = sitrep_phase(server, devices, args.city_viewers, "city", 4, args.rate, args.duration)
        lat = city.get("latency_ms", {})
        print(
            f"  city areas @4 Hz: {args.city_viewers} viewers requested, {city.get('connected')} connected: "
            f"{city.get('frames_per_s')} frames/s, latency p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms "
            f"p99 {lat.get('p99')} ms, drops {city.get('drops')}, closes {city.get('closes')}, server CPU "
            f"{city.get('server_cpu_cores')} cores",
            flush=True,
        )
        print(json.dumps({"raw_frames_per_s": round(raw), "whole": whole, "city": city}))
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        drop_database(name)
        print(f"total {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
