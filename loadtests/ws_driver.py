"""Open N viewer sockets against /v1/stream, subscribe to areas and measure fix-accepted →
frame-received latency (from each item's ``accepted_at``), drops and resumes.

    python loadtests/ws_driver.py --url ws://127.0.0.1:8000 --viewers 500 --duration 30 \
        --username coord --password sitrep-demo [--area city|whole|cells] [--rate 10] [--json]

Uses the public API only. A socket that is closed is reconnected and resumed from its last
``(epoch, seq)``; resumes (replayed or reset) and drops (4008) are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CITY = (-91.6656, 41.9779)


def area_for(kind: str, i: int) -> dict[str, Any]:
    if kind == "whole":
        return {}
    if kind == "cells":
        import h3

        lat = CITY[1] + random.uniform(-0.04, 0.04)
        lon = CITY[0] + random.uniform(-0.06, 0.06)
        return {"cells": list(h3.grid_disk(h3.latlng_to_cell(lat, lon, 7), 1))}
    # "city": a city-sized box (~5-10 km) somewhere around the demo city
    lon = CITY[0] + random.uniform(-0.05, 0.05)
    lat = CITY[1] + random.uniform(-0.04, 0.04)
    return {"bbox": [lon - 0.05, lat - 0.04, lon + 0.05, lat + 0.04]}


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.frames = 0
        self.items = 0
        self.drops = 0
        self.closes: dict[int, int] = {}
        self.resumed = 0
        self.resets = 0
        self.connected = 0
        self.errors = 0


async def viewer(url: str, token: str, i: int, args: argparse.Namespace, stats: Stats, stop: float) -> None:
    sub: dict[str, Any] = {
        "type": "subscribe",
        "id": f"v{i}",
        "topics": args.topics.split(","),
        "max_rate_hz": args.rate,
    }
    sub.update(area_for(args.area, i))
    position: tuple[str, int] | None = None
    while time.time() < stop:
        try:
            async with connect(
                f"{url}/v1/stream?access_token={token}", max_size=None, open_timeout=30, ping_interval=None
            ) as ws:
                stats.connected += 1
                msg = dict(sub)
                if position:
                    msg.update(epoch=position[0], from_seq=position[1])
                await ws.send(json.dumps(msg))
                while time.time() < stop:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), max(0.1, stop - time.time()))
                    except TimeoutError:
                        break
                    now = time.time()
                    m = json.loads(raw)
                    kind = m.get("type")
                    if kind == "delta":
                        stats.frames += 1
                        stats.items += len(m["items"])
                        for it in m["items"]:
                            stats.latencies.append(now - it["accepted_at"])
                        position = (m["epoch"], m["seq"])
                    elif kind == "snapshot":
                        position = (m["epoch"], m["seq"])
                        if m.get("reset"):
                            stats.resets += 1
                    elif kind == "resumed":
                        stats.resumed += 1
                    elif kind == "error":
                        stats.errors += 1
                return
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            stats.closes[code] = stats.closes.get(code, 0) + 1
            if code == 4008:
                stats.drops += 1
            await asyncio.sleep(0.5)
        except OSError:
            stats.errors += 1
            await asyncio.sleep(0.5)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    http = args.url.replace("ws://", "http://").replace("wss://", "https://")
    async with httpx.AsyncClient(base_url=http, timeout=30) as c:
        r = await c.post("/v1/auth/token", json={"username": args.username, "password": args.password})
        r.raise_for_status()
        token = r.json()["access_token"]
    stats = Stats()
    stop = time.time() + args.duration
    tasks = []
    for i in range(args.viewers):
        tasks.append(asyncio.create_task(viewer(args.url, token, i, args, stats, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    lat = [x * 1000 for x in stats.latencies if args.warmup_s <= 0 or True]
    return {
        "viewers": args.viewers,
        "connected": stats.connected,
        "frames": stats.frames,
        "items": stats.items,
        "frames_per_s": round(stats.frames / args.duration, 1),
        "latency_ms": {"p50": round(pct(lat, 50), 1), "p95": round(pct(lat, 95), 1), "p99": round(pct(lat, 99), 1)},
        "drops": stats.drops,
        "closes": stats.closes,
        "resumed": stats.resumed,
        "resets": stats.resets,
        "errors": stats.errors,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="ws://127.0.0.1:8000")
    p.add_argument("--viewers", type=int, default=100)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--username", default="coord")
    p.add_argument("--password", default="sitrep-demo")
    p.add_argument("--topics", default="positions")
    p.add_argument("--area", choices=["whole", "city", "cells"], default="whole")
    p.add_argument("--rate", type=float, default=10)
    p.add_argument("--warmup-s", dest="warmup_s", type=float, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(
            f"{result['viewers']} viewers: {result['frames_per_s']} frames/s, latency p50 {lat['p50']} ms "
            f"p95 {lat['p95']} ms p99 {lat['p99']} ms, drops {result['drops']}, resumed {result['resumed']}, "
            f"resets {result['resets']}, closes {result['closes']}"
        )


if __name__ == "__main__":
    main()
