"""CoverIndex lookups (sorted arrays, one searchsorted per resolution) and the H3 facts they rely on."""

import random
from datetime import UTC, datetime, timedelta, timezone

import h3.api.basic_int as h3i
import numpy as np

from geo.cover import CoverIndex, PolygonCover
from geo.fence_model import rfc3339
from geo.geodesy import point_buffer
from geo.h3index import cells_for


def _reference(covers: dict[int, PolygonCover], lons: np.ndarray, lats: np.ndarray) -> set[tuple[int, int, bool]]:
    """Every (point, key, interior) where the point's own cell at the cover's resolution is in the cover."""
    out = set()
    for key, cover in covers.items():
        cells = dict(cover.cells())
        for i, (lon, lat) in enumerate(zip(lons.tolist(), lats.tolist(), strict=True)):
            cell = h3i.latlng_to_cell(lat, lon, cover.res)
            if cell in cells:
                out.add((i, key, cells[cell]))
    return out


def test_candidates_equal_a_per_cover_lookup_through_adds_and_removes():
    rng = random.Random(11)
    index, covers = CoverIndex(), {}
    for key in range(40):
        geom = point_buffer(-92 + rng.random(), 41 + rng.random(), rng.uniform(300, 20_000), segments=12)
        covers[key] = PolygonCover(geom)
        index.add(key, covers[key])
    assert len({c.res for c in covers.values()}) >= 3  # several resolutions are looked up
    lons = np.asarray([-92 + rng.random() for _ in range(3000)])
    lats = np.asarray([41 + rng.random() for _ in range(3000)])
    for step in range(4):
        pts, keys, interior = index.candidates(lons, lats)
        got = list(zip(pts.tolist(), keys.tolist(), interior.tolist(), strict=True))
        assert len(got) == len(set(got))
        assert set(got) == _reference(covers, lons, lats)
        # change the index between lookups: remove some, replace one, add a new one
        for key in list(covers)[: 5 + step]:
            index.remove(key)
            del covers[key]
        covers[100 + step] = PolygonCover(point_buffer(-91.5, 41.5, 5_000 + 1_000 * step, segments=16))
        index.add(100 + step, covers[100 + step])
    empty = CoverIndex()
    pts, keys, interior = empty.candidates(lons, lats)
    assert pts.size == keys.size == interior.size == 0


def test_a_coarser_cell_is_not_always_the_parent_of_the_finer_one():
    """Why candidates() computes every resolution from the point: deriving coarser cells with
    cell_to_parent from the finest one would be wrong for a few percent of points."""
    rng = random.Random(5)
    lats = [rng.uniform(-80, 80) for _ in range(5000)]
    lons = [rng.uniform(-180, 180) for _ in range(5000)]
    fine = cells_for(lons, lats, 10).tolist()
    for res in (5, 7, 9):
        coarse = cells_for(lons, lats, res).tolist()
        differ = sum(h3i.cell_to_parent(f, res) != c for f, c in zip(fine, coarse, strict=True))
        assert 0.02 * len(fine) < differ < 0.15 * len(fine)


def test_cells_for_equals_latlng_to_cell():
    rng = random.Random(3)
    lons = [rng.uniform(-180, 180) for _ in range(2000)]
    lats = [rng.uniform(-90, 90) for _ in range(2000)]
    for res in (0, 5, 9, 15):
        assert cells_for(lons, lats, res).tolist() == [
            h3i.latlng_to_cell(la, lo, res) for lo, la in zip(lons, lats, strict=True)
        ]
    assert cells_for([], [], 9).tolist() == []


def test_rfc3339_is_utc_with_z_and_microseconds_when_present():
    rng = random.Random(9)
    base = datetime(1990, 1, 1, tzinfo=UTC)
    for i in range(20_000):
        t = base + timedelta(microseconds=rng.randrange(10**15))
        if i % 4 == 0:
            t = t.replace(microsecond=0)
        expected = t.replace(tzinfo=None).isoformat() + "Z"
        assert rfc3339(t) == expected
        assert rfc3339(t.astimezone(timezone(timedelta(hours=-5)))) == expected
        assert rfc3339(t.replace(tzinfo=timezone(timedelta(0)))) == expected


def test_advancing_in_chunks_gives_the_events_of_one_advance():
    """The evaluator releases due fixes a chunk at a time (advance(limit=...)); same events, same state."""
    from geo.fences import Fence, FenceEngine, Fix

    rng = random.Random(4)
    fences = [
        Fence(
            id=f"f{i}",
            geometry=point_buffer(
                -92 + 0.02 * rng.random(), 41 + 0.02 * rng.random(), rng.uniform(200, 900), segments=12
            ),
            detect=frozenset({"enter", "exit", "inside", "outside", "dwell"})
            if i % 2
            else frozenset({"enter", "exit"}),
            dwell_s=20.0 if i % 3 == 0 else 0.0,
            hysteresis_m=30.0 if i % 4 == 0 else 0.0,
        )
        for i in range(12)
    ]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    fixes = []
    pos = {f"r{k}": [-92 + 0.02 * rng.random(), 41 + 0.02 * rng.random()] for k in range(40)}
    for step in range(60):
        for rid, p in pos.items():
            p[0] += rng.uniform(-0.0015, 0.0015)
            p[1] += rng.uniform(-0.0015, 0.0015)
            jitter = timedelta(seconds=rng.uniform(-4, 0))
            fixes.append(
                Fix(responder_id=rid, fix_time=t0 + timedelta(seconds=5 * step) + jitter, lon=p[0], lat=p[1],
                    accuracy_m=rng.choice([None, 5.0, 60.0]), seq=len(fixes) + 1)
            )  # fmt: skip
    rng.shuffle(fixes)
    whole, chunked = FenceEngine(10.0), FenceEngine(10.0)
    whole.upsert_fences(fences, t0)
    chunked.upsert_fences(fences, t0)
    a, b = [], []
    for start in range(0, len(fixes), 300):
        now = t0 + timedelta(seconds=start / 8)
        a += whole.add_fixes(fixes[start : start + 300], now)
        chunked.buffer(fixes[start : start + 300], now)
        b += chunked.advance(now, limit=7)
        while chunked.due(now):
            b += chunked.advance(now, limit=7)
    end = t0 + timedelta(hours=1)
    a += whole.advance(end)
    while chunked.due(end):
        b += chunked.advance(end, limit=5)
    assert a and a == b
    assert whole.snapshot() == chunked.snapshot()
    assert chunked.next_release() is None and not chunked.due(end)
