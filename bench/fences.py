"""Fence engine benchmark: 10,000 moving responders, 1,000 hazards, 10,000 fixes/s of fix time.

Run: .venv/bin/python bench/fences.py [--seconds 10] [--responders 10000] [--hazards 1000]

Prints evaluation throughput, per-batch latency, candidate pairs after the H3 prefilter against the
brute-force pair count (and the brute-force time measured in the same run as the reference), and the
time for one hazard update to re-evaluate every responder. Hazards are the NWS alert polygons from
``<repo>/../shared/samples/nws`` (when present) plus synthetic polygons of realistic sizes
(0.5-500 km², log-uniform) scattered over the same region as the responders.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Polygon

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.fences import Fence, FenceEngine, Fix
from geo.geometry import GeometryError, validate_geojson

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "samples"
T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)


def nws_polygons() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for path in sorted((SAMPLES / "nws").glob("*.json")):
        data = json.loads(path.read_text())
        for feat in data.get("features", []):
            geom = feat.get("geometry")
            if not geom or geom.get("type") not in ("Polygon", "MultiPolygon"):
                continue
            try:
                parsed = validate_geojson(geom)
            except GeometryError:
                continue
            out.append((str(feat.get("id", f"nws-{len(out)}")), parsed.geometry))
    return out


def synthetic_polygon(rng: np.random.Generator, lon: float, lat: float, area_km2: float) -> Polygon:
    n = int(rng.integers(6, 60))
    radius_km = math.sqrt(area_km2 / math.pi)
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius_km * rng.uniform(0.6, 1.3, n)
    dx = radii * np.cos(angles) / (111.32 * math.cos(math.radians(lat)))
    dy = radii * np.sin(angles) / 110.57
    return Polygon(zip(lon + dx, lat + dy, strict=True))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--responders", type=int, default=10_000)
    ap.add_argument("--hazards", type=int, default=1_000)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of fix time to simulate")
    ap.add_argument("--rate", type=int, default=10_000, help="fixes per second of fix time")
    ap.add_argument("--batch-ms", type=int, default=100)
    ap.add_argument("--window-s", type=float, default=10.0)
    args = ap.parse_args()
    rng = np.random.default_rng(20240701)
    wall0 = time.perf_counter()

    # ---------------------------------------------------------------- hazards
    nws = nws_polygons() if SAMPLES.is_dir() else []
    region = (-93.5, 40.8, -90.5, 43.0)  # eastern Iowa, where most sample NWS polygons are
    geoms: list[tuple[str, object]] = list(nws[: args.hazards])
    while len(geoms) < args.hazards:
        area = float(np.exp(rng.uniform(math.log(0.5), math.log(500))))
        lon, lat = rng.uniform(region[0], region[2]), rng.uniform(region[1], region[3])
        geom = shapely.make_valid(synthetic_polygon(rng, lon, lat, area))
        geoms.append((f"syn-{len(geoms)}", geom))
    engine = FenceEngine(reorder_window_s=args.window_s)
    t = time.perf_counter()
    for hid, geom in geoms:
        engine.upsert_fence(Fence(id=hid, kind="hazard", name=hid, geometry=geom), T0)
    build_s = time.perf_counter() - t
    cells = sum(len(engine._index.cover(e.slot)) for e in engine._fences.values())
    print(f"hazards: {len(geoms)} ({len(nws)} NWS sample polygons + {len(geoms) - len(nws)} synthetic)")
    print(f"  index build: {build_s:.2f} s, {cells:,} covering cells")

    # ---------------------------------------------------------------- responders
    n = args.responders
    lons = rng.uniform(region[0], region[2], n)
    lats = rng.uniform(region[1], region[3], n)
    if nws:  # a share of responders near the non-Iowa NWS polygons too
        far = [g for _, g in nws if not shapely.intersects(g, shapely.box(*region))]
        for i in range(0, n // 10):
            g = far[i % len(far)] if far else None
            if g is not None:
                c = g.representative_point()
                lons[i], lats[i] = c.x + rng.normal(0, 0.05), c.y + rng.normal(0, 0.05)
    speed = rng.uniform(1.0, 20.0, n)  # m/s: walking to driving
    heading = rng.uniform(0, 2 * math.pi, n)
    ids = [f"resp-{i:05d}" for i in range(n)]
    engine.load_positions(
        Fix(responder_id=ids[i], fix_time=T0 - timedelta(seconds=60), lon=float(lons[i]), lat=float(lats[i]))
        for i in range(n)
    )

    # ---------------------------------------------------------------- fixes
    batch_s = args.batch_ms / 1000.0
    per_batch = int(args.rate * batch_s)
    n_batches = int(args.seconds / batch_s)
    latencies: list[float] = []
    evaluated_before = engine.stats.fixes_evaluated
    pairs_before = engine.stats.candidate_pairs
    brute_before = engine.stats.brute_force_pairs
    exact_before = engine.stats.exact_tests
    n_events = 0
    engine_time = 0.0
    cursor = 0
    seq = 0
    sample_fixes: list[Fix] = []
    for b in range(n_batches + int(args.window_s / batch_s) + 1):
        now = T0 + timedelta(seconds=(b + 1) * batch_s)
        fixes: list[Fix] = []
        if b < n_batches:
            idx = (cursor + np.arange(per_batch)) % n
            cursor = (cursor + per_batch) % n
            dt = 1.0  # each responder reports about once per second
            heading[idx] += rng.normal(0, 0.3, idx.size)
            step = speed[idx] * dt
            lats[idx] += step * np.sin(heading[idx]) / 110_570
            lons[idx] += step * np.cos(heading[idx]) / (111_320 * np.cos(np.radians(lats[idx])))
            ft = T0 + timedelta(seconds=b * batch_s)
            for k, i in enumerate(idx.tolist()):
                seq += 1
                fixes.append(
                    Fix(
                        responder_id=ids[i],
                        fix_time=ft + timedelta(microseconds=k),
                        lon=float(lons[i]),
                        lat=float(lats[i]),
                        accuracy_m=float(rng.uniform(3, 30)),
                        seq=seq,
                        received_at=now,
                    )
                )
            if b == 0:
                sample_fixes = fixes
        t = time.perf_counter()
        events = engine.add_fixes(fixes, now)
        elapsed = time.perf_counter() - t
        engine_time += elapsed
        n_events += len(events)
        if b >= int(args.window_s / batch_s):  # steady state: releases happen
            latencies.append(elapsed)
    s = engine.stats
    evaluated = s.fixes_evaluated - evaluated_before
    pairs = s.candidate_pairs - pairs_before
    brute = s.brute_force_pairs - brute_before
    exact = s.exact_tests - exact_before
    print(f"fixes: {evaluated:,} evaluated over {args.seconds:.0f} s of fix time ({args.rate:,}/s offered)")
    print(f"  engine time {engine_time:.2f} s -> {evaluated / engine_time:,.0f} fixes/s evaluated (single core)")
    print(
        f"  per-batch latency ({per_batch} fixes / {args.batch_ms} ms): p50 {percentile(latencies, 50) * 1000:.1f} ms,"
        f" p95 {percentile(latencies, 95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"  event lag = reorder window {args.window_s:.0f} s + batch interval {args.batch_ms} ms"
        f" + p95 batch latency {percentile(latencies, 95) * 1000:.0f} ms (window is a setting)"
    )
    print(f"  events: {n_events:,}; late fixes: {s.late_fixes}")
    print(
        f"candidate pairs after H3 prefilter: {pairs:,} vs brute force {brute:,}"
        f" (ratio 1:{brute / max(pairs, 1):,.0f}); exact shapely tests {exact:,}"
    )

    # ---------------------------------------------------------------- brute force reference
    bl = np.array([f.lon for f in sample_fixes])
    bt = np.array([f.lat for f in sample_fixes])
    prepared = [g for _, g in geoms]
    for g in prepared:
        shapely.prepare(g)
    t = time.perf_counter()
    hits = 0
    for g in prepared:
        hits += int(shapely.contains_xy(g, bl, bt).sum())
    brute_s = time.perf_counter() - t
    per_fix_brute = brute_s / len(sample_fixes)
    print(
        f"brute force reference: {len(sample_fixes):,} fixes x {len(prepared):,} hazards with vectorised"
        f" contains_xy = {brute_s * 1000:.0f} ms ({1 / per_fix_brute:,.0f} fixes/s; {hits} hits),"
        f" no state machine"
    )
    print(f"  engine vs brute-force point-in-polygon throughput: {(evaluated / engine_time) * per_fix_brute:.1f}x")

    # ---------------------------------------------------------------- hazard updates
    update_times = []
    update_events = 0
    positions = engine.positions()
    plons = np.array([p["lon"] for p in positions])
    plats = np.array([p["lat"] for p in positions])
    for k in range(5):
        hid, geom = geoms[len(nws) + k * 7]
        moved = shapely.affinity.translate(shapely.affinity.scale(geom, 1.5, 1.5), 0.02, 0.01)
        now = T0 + timedelta(seconds=args.seconds + args.window_s + 5 + k)
        t = time.perf_counter()
        events = engine.upsert_fence(Fence(id=hid, kind="hazard", geometry=moved, version=2), now)
        update_times.append(time.perf_counter() - t)
        update_events += len(events)
    big_id, big_geom = max(geoms, key=lambda hg: shapely.area(hg[1]))
    grown = shapely.affinity.scale(big_geom, 1.1, 1.1)
    t = time.perf_counter()
    ev = engine.upsert_fence(Fence(id=big_id, kind="hazard", geometry=grown, version=2), now)
    big_s = time.perf_counter() - t
    inside_big = int(shapely.contains_xy(grown, plons, plats).sum())
    print(
        f"hazard update re-evaluating {len(positions):,} responders: median {np.median(update_times) * 1000:.1f} ms,"
        f" max {max(update_times) * 1000:.1f} ms ({update_events} events over 5 moves);"
        f" largest hazard grown 10%: {big_s * 1000:.1f} ms ({len(ev)} events, {inside_big} inside)"
    )
    print(f"total wall time {time.perf_counter() - wall0:.1f} s")


if __name__ == "__main__":
    main()
