"""`sitrep simulate`: drive a running server through its public ingest APIs.

* a synthetic fleet (``--fleet N``): the demo devices (``.sitrep/demo-devices.json`` written by
  ``sitrep seed-demo``, or ``--devices FILE``) random-walk along street-like legs around their
  start point at ``--rate`` fixes/s in total;
* ``--replay [DIR]``: the GPX tracks and NMEA logs in ``../shared/samples/gps/``, one track per
  demo device, moved to the device's start point and shifted to "now", paced at ``--speedup``.

``--mode osmand`` sends one fix per OsmAnd request (what Traccar Client does); ``--mode batch``
posts JSON arrays to ``/v1/positions``. Bounded by ``--duration``; prints what it sent and what
was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from .positions.gpstracks import Track, load_tracks

KNOTS_PER_MPS = 1.943844


@dataclass
class Walker:
    device: dict[str, str]
    lon: float
    lat: float
    heading_deg: float
    speed_mps: float

    def step(self, dt_s: float, rng: random.Random) -> None:
        if rng.random() < 0.05:  # turn at a "corner": streets run on a grid
            self.heading_deg = (self.heading_deg + rng.choice((90, -90, 180))) % 360
        self.speed_mps = min(20.0, max(0.0, self.speed_mps + rng.uniform(-0.5, 0.5)))
        d = self.speed_mps * dt_s
        rad = math.radians(self.heading_deg)
        self.lat += d * math.cos(rad) / 111_320.0
        self.lon += d * math.sin(rad) / (111_320.0 * math.cos(math.radians(self.lat)))


def _fix(
    device: dict[str, str], when: datetime, lon: float, lat: float, speed: float, heading: float
) -> dict[str, Any]:
    return {
        "device": device,
        "fix_time": when,
        "lon": round(lon, 7),
        "lat": round(lat, 7),
        "speed_mps": round(speed, 2),
        "heading_deg": round(heading % 360, 1),
        "accuracy_m": 8.0,
        "battery_pct": 80.0,
    }


class Sender:
    def __init__(self, client: httpx.AsyncClient, mode: str, concurrency: int) -> None:
        self.client = client
        self.mode = mode
        self.slots = asyncio.Semaphore(concurrency)
        self.stats: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, fixes: list[dict[str, Any]]) -> None:
        if self.mode == "osmand":
            for f in fixes:
                self._spawn(self._osmand(f))
        else:
            by_device: dict[str, list[dict[str, Any]]] = {}
            for f in fixes:
                by_device.setdefault(f["device"]["token"], []).append(f)
            for chunk in by_device.values():
                self._spawn(self._batch(chunk))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _osmand(self, f: dict[str, Any]) -> None:
        params = {
            "id": f["device"]["unique_id"],
            "token": f["device"]["token"],
            "timestamp": str(int(f["fix_time"].timestamp() * 1000)),
            "lat": str(f["lat"]),
            "lon": str(f["lon"]),
            "speed": f"{f['speed_mps'] * KNOTS_PER_MPS:.3f}",
            "bearing": str(f["heading_deg"]),
            "accuracy": str(f["accuracy_m"]),
            "batt": str(f["battery_pct"]),
        }
        async with self.slots:
            self.stats["sent"] += 1
            try:
                r = await self.client.get("/osmand", params=params)
            except httpx.HTTPError:
                self.stats["errors"] += 1
                return
        self.stats["acked" if r.status_code == 200 else f"http_{r.status_code}"] += 1

    async def _batch(self, fixes: list[dict[str, Any]]) -> None:
        body = [
            {k: (v.isoformat().replace("+00:00", "Z") if k == "fix_time" else v) for k, v in f.items() if k != "device"}
            for f in fixes
        ]
        async with self.slots:
            self.stats["sent"] += len(body)
            try:
                r = await self.client.post(
                    "/v1/positions", json=body, headers={"Authorization": f"Bearer {fixes[0]['device']['token']}"}
                )
            except httpx.HTTPError:
                self.stats["errors"] += len(body)
                return
        if r.status_code != 200:
            self.stats[f"http_{r.status_code}"] += len(body)
            return
        result = r.json()
        for a in result["accepted"]:
            self.stats[a["status"]] += 1
            self.stats["acked"] += 1
        for x in result["rejected"]:
            self.stats[f"rejected_{x['reason']}"] += 1

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def load_devices(path: Path | None) -> list[dict[str, str]]:
    if path is None:
        path = Path(os.environ.get("SITREP_STATE_DIR", Path.cwd() / ".sitrep")) / "demo-devices.json"
    if not path.exists():
        raise SystemExit(f"sitrep simulate: {path} not found; run `sitrep seed-demo` or pass --devices")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


async def run_fleet(args: argparse.Namespace, devices: list[dict[str, str]], sender: Sender) -> None:
    rng = random.Random(args.seed)
    walkers = [
        Walker(
            d,
            float(d.get("lon", -91.6656)),
            float(d.get("lat", 41.9779)),
            rng.choice((0, 90, 180, 270)),
            rng.uniform(1, 12),
        )
        for d in devices[: args.fleet]
    ]
    tick_s = 0.1
    per_tick = args.rate * tick_s
    carry = 0.0
    index = 0
    started = time.monotonic()
    next_report = started + 1
    while time.monotonic() - started < args.duration:
        carry += per_tick
        n = int(carry)
        carry -= n
        now = datetime.now(UTC)
        fixes = []
        for _ in range(n):
            w = walkers[index % len(walkers)]
            index += 1
            w.step(args.speedup * len(walkers) / max(args.rate, 1e-9), rng)
            fixes.append(_fix(w.device, now, w.lon, w.lat, w.speed_mps, w.heading_deg))
        sender.send(fixes)
        if time.monotonic() >= next_report:
            next_report += 1
            print(f"  t={time.monotonic() - started:5.1f}s {dict(sender.stats)}", flush=True)
        await asyncio.sleep(tick_s)


async def run_replay(
    args: argparse.Namespace, devices: list[dict[str, str]], sender: Sender, tracks: list[Track]
) -> None:
    # Each track starts "now" at its device's home and plays at --speedup; times never run ahead of the clock.
    start_wall = datetime.now(UTC)
    plans = []
    for track, device in zip(tracks, devices, strict=False):
        lon0, lat0 = track.points[0].lon, track.points[0].lat
        dlon = float(device.get("lon", lon0)) - lon0 if args.relocate else 0.0
        dlat = float(device.get("lat", lat0)) - lat0 if args.relocate else 0.0
        plans.append((track, device, dlon, dlat))
        print(f"  {track.name}: {len(track.points)} fixes ({track.skipped} skipped) -> {device['unique_id']}")
    started = time.monotonic()
    cursors = [0] * len(plans)
    while time.monotonic() - started < args.duration and any(
        c < len(p[0].points) for c, p in zip(cursors, plans, strict=True)
    ):
        elapsed = (time.monotonic() - started) * args.speedup
        fixes = []
        for i, (track, device, dlon, dlat) in enumerate(plans):
            t0 = track.points[0].t
            while cursors[i] < len(track.points) and track.points[cursors[i]].t - t0 <= elapsed:
                p = track.points[cursors[i]]
                when = start_wall + timedelta(seconds=(p.t - t0) / args.speedup)
                fixes.append(_fix(device, when, p.lon + dlon, p.lat + dlat, p.speed_mps or 0.0, p.heading_deg or 0.0))
                cursors[i] += 1
        sender.send(fixes)
        await asyncio.sleep(0.05)


async def amain(args: argparse.Namespace) -> int:
    devices = load_devices(args.devices)
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.url, timeout=30, limits=limits) as client:
        sender = Sender(client, args.mode, args.concurrency)
        if args.replay is not None:
            directory = (
                Path(args.replay) if args.replay else Path(__file__).resolve().parents[2] / "shared" / "samples" / "gps"
            )
            tracks = load_tracks(directory)
            if not tracks:
                print(f"sitrep simulate: no GPX/NMEA tracks in {directory}")
                return 1
            await run_replay(args, devices, sender, tracks)
        else:
            await run_fleet(args, devices, sender)
        await sender.drain()
    print(f"done: {dict(sender.stats)}")
    return 0 if sender.stats["acked"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitrep simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("SITREP_URL", "http://127.0.0.1:8000"))
    p.add_argument("--devices", type=Path, help="device file (default .sitrep/demo-devices.json)")
    p.add_argument("--fleet", type=int, default=50, help="synthetic responders")
    p.add_argument("--rate", type=float, default=50.0, help="fixes per second in total")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    p.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per real second")
    p.add_argument("--mode", choices=("osmand", "batch"), default="osmand")
    p.add_argument("--replay", nargs="?", const="", default=None, help="replay GPX/NMEA tracks (dir optional)")
    p.add_argument("--no-relocate", dest="relocate", action="store_false", help="keep tracks where they were")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(amain(args))
