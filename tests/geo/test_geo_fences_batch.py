"""Batched fence changes and the engine's public per-responder reads (used by the server evaluator)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import shapely

from geo.cover import PolygonCover
from geo.fences import Fence, FenceEngine, Fix
from geo.geodesy import point_buffer

T0 = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
LON0, LAT0 = -91.7, 42.0


def _fences(rng: random.Random, n: int, *, version: int = 1) -> list[Fence]:
    out = []
    for k in range(n):
        geom = point_buffer(LON0 + rng.uniform(0, 0.1), LAT0 + rng.uniform(0, 0.1), rng.uniform(300, 3000), segments=16)
        out.append(
            Fence(
                id=f"f{k}",
                kind="hazard" if k % 2 else "geofence",
                geometry=geom,
                detect=frozenset({"enter", "exit", "inside"}),
                hysteresis_m=50.0 if k % 3 == 0 else 0.0,
                version=version,
            )
        )
    return out


def _engine(rng: random.Random, fences: list[Fence]) -> FenceEngine:
    engine = FenceEngine(0.0)
    for f in fences:
        engine.upsert_fence(f, T0)
    fixes = [
        Fix(responder_id=f"r{i}", fix_time=T0 + timedelta(seconds=1), lon=LON0 + rng.uniform(0, 0.1),
            lat=LAT0 + rng.uniform(0, 0.1), accuracy_m=rng.choice([None, 5.0, 40.0]), seq=i + 1)
        for i in range(400)
    ]  # fmt: skip
    engine.add_fixes(fixes, T0 + timedelta(seconds=2))
    return engine


def _moved(fences: list[Fence], rng: random.Random) -> list[Fence]:
    moved = []
    for f in fences:
        geom = shapely.affinity.translate(f.geometry, rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01))
        moved.append(Fence(**{**{k: getattr(f, k) for k in f.__struct_fields__}, "geometry": geom, "version": 2}))
    return moved


def test_batched_fence_changes_equal_one_by_one() -> None:
    rng = random.Random(11)
    fences = _fences(rng, 12)
    one, batch = _engine(random.Random(5), fences), _engine(random.Random(5), fences)
    assert one.snapshot() == batch.snapshot()
    changed = _moved(fences, rng)
    new = [Fence(id=f"n{k}", geometry=f.geometry, detect=f.detect) for k, f in enumerate(_fences(rng, 4))]
    now = T0 + timedelta(seconds=10)
    sequential = [e for f in [*changed, *new] for e in one.upsert_fence(f, now)]
    batched = batch.upsert_fences([*changed, *new], now)
    assert batched == sequential
    assert any(e.detect == "enter" for e in batched) and any(e.detect == "exit" for e in batched)
    assert batch.snapshot() == one.snapshot()


def test_stored_cover_equals_a_fresh_one() -> None:
    rng = np.random.default_rng(3)
    geom = point_buffer(LON0, LAT0, 2500, segments=24)
    fresh = PolygonCover(geom)
    stored = PolygonCover.from_cells(geom, list(fresh.interior), list(fresh.boundary))
    assert stored.res == fresh.res and len(stored) == len(fresh)
    lons, lats = LON0 + rng.uniform(-0.05, 0.05, 5000), LAT0 + rng.uniform(-0.05, 0.05, 5000)
    assert np.array_equal(stored.contains(lons, lats), fresh.contains(lons, lats))
    with pytest.raises(ValueError):
        PolygonCover.from_cells(geom, [], [])
    coarse = PolygonCover(geom, res=fresh.res - 1)
    with pytest.raises(ValueError):
        PolygonCover.from_cells(geom, list(fresh.interior), list(coarse.boundary))


def test_engine_uses_a_given_cover() -> None:
    geom = point_buffer(LON0, LAT0, 1000, segments=16)
    cover = PolygonCover(geom)
    engine = FenceEngine(0.0)
    engine.load_positions([Fix(responder_id="a", fix_time=T0, lon=LON0, lat=LAT0, seq=1)])
    events = engine.upsert_fences([Fence(id="h", kind="hazard", geometry=geom)], T0, {"h": cover})
    assert [(e.detect, e.responder_id) for e in events] == [("enter", "a")]
    assert engine._fences["h"].cover is cover


def test_per_responder_reads() -> None:
    geom = point_buffer(LON0, LAT0, 1000, segments=16)
    engine = FenceEngine(0.0)
    engine.upsert_fence(Fence(id="g", geometry=geom), T0)
    fix = Fix(responder_id="a", team_id="t", fix_time=T0, lon=LON0, lat=LAT0, accuracy_m=3.0, seq=7)
    engine.add_fixes([fix, Fix(responder_id="b", fix_time=T0, lon=LON0 + 1, lat=LAT0, seq=8)], T0)
    assert engine.drain_evaluated() == {"a", "b"}
    assert engine.drain_evaluated() == set()
    visits = engine.visits_of(["a", "b", "nobody"])
    assert visits["b"] == {} and visits["nobody"] == {}
    assert visits["a"]["g"].state == "inside" and visits["a"]["g"].since == T0
    assert engine.all_visits().keys() == {"a"}
    (pos,) = engine.positions_of(["a", "nobody"])
    assert (pos.responder_id, pos.team_id, pos.lon, pos.lat, pos.accuracy_m, pos.seq) == ("a", "t", LON0, LAT0, 3.0, 7)
