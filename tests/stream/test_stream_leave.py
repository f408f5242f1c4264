"""Leaving an area: a box (or cell) group also sends an item whose previous point was inside, once, so a
viewer moves the object out instead of keeping it frozen at the edge; a router lane sends exactly
what each group taking the batches itself sends, including objects that leave within one tick."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx
import pytest

from server.bus import Change
from server.stream.area import Area
from server.stream.compact import HANDLES
from server.stream.groups import Group
from server.stream.router import MIN_GROUPS, Router
from server.stream.ticks import Batch, PointMemory, decode_batch, encode_batch
from tests.conftest import ServerProcess, login
from tests.positions.helpers import device_headers, fix, new_device

from .helpers import open_viewer
from .test_stream_compact import CITY, TEAM, box_near_city, member, new_group, position, twins

BOX = Area(bbox=(CITY[0] - 0.01, CITY[1] - 0.01, CITY[0] + 0.01, CITY[1] + 0.01))


def at(rid: str, k: int, lon: float, lat: float) -> Change:
    c = position(rid, k, lon=lon, lat=lat)
    return Change("positions", rid, c.data, accepted_at=c.accepted_at, lon=lon, lat=lat, team_id=TEAM)


def batch(memory: PointMemory, seq: int, changes: list[Change]) -> Batch:
    """A received batch with its previous points set, as the hub does before routing."""
    b = decode_batch("ep", seq, encode_batch(changes, "w"))
    memory.apply(b.items)
    return b


def frames(viewer: Any) -> list[dict[str, Any]]:
    out = [json.loads(f.text) for f in viewer._queue]
    viewer._queue.clear()
    return out


def test_point_memory_sets_each_items_previous_point() -> None:
    memory = PointMemory()
    first = batch(memory, 1, [at("a", 1, -91.6, 41.9)])
    assert first.items[0].plon is None
    second = batch(memory, 2, [at("a", 2, -91.5, 41.8), at("a", 3, -91.4, 41.7)])
    assert [(it.plon, it.plat) for it in second.items] == [(-91.6, 41.9), (-91.5, 41.8)]
    batch(memory, 3, [Change("positions", "a", {"id": "a", "deleted": True})])
    assert len(memory) == 0


def test_point_memory_asks_where_a_responder_was_when_it_has_no_point() -> None:
    """A worker that had no viewers kept no points (it skipped the batches): the live positions table
    says where a responder was, so an area it leaves still hears about it; its own points win."""
    memory = PointMemory()
    known = {"a": (-91.6, 41.9)}
    b = decode_batch("ep", 1, encode_batch([at("a", 1, -91.5, 41.8), at("b", 1, -91.4, 41.7)], "w"))
    memory.apply(b.items, known.get)
    assert [(it.plon, it.plat) for it in b.items] == [(-91.6, 41.9), (None, None)]
    b = decode_batch("ep", 2, encode_batch([at("a", 2, -91.3, 41.6)], "w"))
    memory.apply(b.items, lambda key: (0.0, 0.0))
    assert (b.items[0].plon, b.items[0].plat) == (-91.5, 41.8)


async def test_a_responder_leaving_a_box_gets_one_last_frame_on_both_paths() -> None:
    """Inside, then just outside (one frame with the outside position), then further out (nothing)."""
    plain = new_group("compact", BOX)
    routed = [new_group("compact", BOX) for _ in range(MIN_GROUPS + 1)]
    pv, rvs = member(plain), [member(g) for g in routed]
    router = Router()
    mp, mr = PointMemory(), PointMemory()
    route = [
        (CITY[0], CITY[1], True),
        (CITY[0] + 0.02, CITY[1], True),  # left: its last update, outside
        (CITY[0] + 0.03, CITY[1], False),
        (CITY[0] + 0.04, CITY[1] + 0.01, False),
    ]
    for seq, (lon, lat, sent) in enumerate(route, 1):
        changes = [at("a", seq, lon, lat)]
        plain._last_flush = 0.0
        plain.offer(batch(mp, seq, changes))
        router.deliver(batch(mr, seq, changes), routed, 1)
        router.route_pending()
        for got in [frames(pv), *map(frames, rvs)]:
            positions = [p for f in got for p in f["positions"]]
            if sent:
                assert [(p[0], p[1], p[2]) for p in positions] == [(HANDLES("a"), round(lon, 6), round(lat, 6))], seq
            else:
                assert positions == [], seq
    for g in [plain, *routed]:
        g.close()


async def test_a_responder_leaving_within_one_tick_gets_its_outside_position() -> None:
    """Inside at the start of a tick, out by its end: both paths send the newest (outside) state once,
    never the stale inside one."""
    plain = new_group("json", BOX)
    routed = [new_group("json", BOX) for _ in range(MIN_GROUPS + 1)]
    pv, rvs = member(plain), [member(g) for g in routed]
    router = Router()
    mp, mr = PointMemory(), PointMemory()
    for m in (mp, mr):
        batch(m, 1, [at("a", 1, CITY[0], CITY[1])])  # seen inside before
    plain._last_flush = time.monotonic()  # coalesce both batches into one frame
    for seq, lon in ((2, CITY[0] + 0.005), (3, CITY[0] + 0.05)):
        changes = [at("a", seq, lon, CITY[1])]
        plain.offer(batch(mp, seq, changes))
        router.deliver(batch(mr, seq, changes), routed, 1)
    plain.flush()
    router.route_pending()
    for got in [frames(pv), *map(frames, rvs)]:
        assert [(f["seq"], [i["data"]["lon"] for i in f["items"]]) for f in got] == [(3, [CITY[0] + 0.05])]
    for g in [plain, *routed]:
        g.close()


def grid_x(i: int) -> float:
    return round(CITY[0] + i * 0.001, 6)


def grid_y(j: int) -> float:
    return round(CITY[1] + j * 0.001, 6)


@pytest.mark.parametrize("grid", [False, True], ids=["random", "grid"])
async def test_lane_frames_equal_the_per_group_path_with_moves_out_within_ticks(grid: bool) -> None:
    """Random ticks of one to three batches: responders move in, out and through boxes, some twice in a
    tick, some are deleted; json and compact box groups on the lane send what their twins taking each
    batch themselves send (frames flushed once per tick on both paths). ``grid``: box edges and points
    on one grid and steps of one or two cells, so points lie exactly on edges and most previous points
    are not separated from the newest by any edge (the lane compares just the others with the boxes)."""
    rng = random.Random(17)
    boxes = []
    for _ in range(MIN_GROUPS + 5):
        if grid:
            i, j = rng.randint(-10, 10), rng.randint(-10, 10)
            boxes.append(Area(bbox=(grid_x(i - 4), grid_y(j - 3), grid_x(i + 4), grid_y(j + 3))))
            continue
        boxes.append(box_near_city(rng, (0.01, 0.01), (0.004, 0.003)))
    encodings = ["compact" if i % 3 else "json" for i in range(len(boxes))]
    plain, routed, pvs, rvs = twins(boxes, encodings)
    router = Router()
    mp, mr = PointMemory(), PointMemory()
    rids = [f"r{i:02d}" for i in range(25)]
    where = {r: (CITY[0] + rng.uniform(-0.015, 0.015), CITY[1] + rng.uniform(-0.015, 0.015)) for r in rids}
    cell = {r: (rng.randint(-15, 15), rng.randint(-15, 15)) for r in rids}
    seq = 0
    left = 0
    for _tick in range(40):
        for g in plain:
            g._last_flush = time.monotonic()
        for _ in range(rng.randint(1, 3)):
            seq += 1
            changes = []
            for rid in rng.sample(rids, 10):
                if grid:
                    i, j = cell[rid]
                    i, j = i + rng.choice((-2, -1, 0, 1, 2)), j + rng.choice((-1, 0, 1))
                    cell[rid] = (i, j)
                    lon, lat = grid_x(i), grid_y(j)
                else:
                    lon, lat = where[rid]
                    lon, lat = lon + rng.uniform(-0.006, 0.006), lat + rng.uniform(-0.005, 0.005)
                    where[rid] = (lon, lat)
                changes.append(at(rid, seq, lon, lat))
            if seq % 11 == 0:
                changes.append(Change("positions", rids[seq % 25], {"id": rids[seq % 25], "deleted": True}))
            taken = batch(mp, seq, changes)
            for g in plain:
                g.offer(taken)
            router.deliver(batch(mr, seq, changes), routed, 1)
        for g in plain:
            g.flush()
        router.route_pending()
        for box, pv, rv in zip(boxes, pvs, rvs, strict=True):
            want, got = frames(pv), frames(rv)
            assert len(got) == len(want) <= 1, seq
            for w, g in zip(want, got, strict=True):
                # (seq: a lane frame is numbered by its last batch, a group's by the last it took)
                if "positions" in w:
                    assert sorted(g["positions"]) == sorted(w["positions"]), seq
                    assert sorted(g["meta"]) == sorted(w["meta"]), seq
                    x0, y0, x1, y1 = box.bbox  # type: ignore[misc]
                    left += sum(not (x0 <= p[1] <= x1 and y0 <= p[2] <= y1) for p in w["positions"] if p[1])
                else:
                    assert sorted(g["items"], key=str) == sorted(w["items"], key=str), seq
    assert left > 10  # frames did carry positions outside their box (objects leaving)
    for g in plain + routed:
        g.close()


def test_a_replayed_batch_carries_an_object_leaving_the_area() -> None:
    group: Group = new_group("compact", BOX)
    memory = PointMemory()
    replayed = [
        batch(memory, 1, [at("a", 1, CITY[0], CITY[1])]),
        batch(memory, 2, [at("a", 2, CITY[0] + 0.5, CITY[1])]),
    ]
    got = [group.replay_frame(b) for b in replayed]
    assert all(f is not None for f in got)
    assert json.loads(got[1].text)["positions"][0][1] == round(CITY[0] + 0.5, 6)  # type: ignore[union-attr]
    group.close()


async def test_a_viewer_sees_a_responder_walk_out_of_its_box(server: ServerProcess, client: httpx.AsyncClient) -> None:
    """Against the real server: the fix that takes a responder out of the viewer's box arrives (with the
    outside position), the next one does not."""
    coord = await login(client, "coord")
    device = await new_device(client, {"Authorization": f"Bearer {coord}"})
    rid = device["responder_id"]
    box = [-91.70, 41.95, -91.64, 41.99]
    r = await client.post("/v1/positions", json=[fix(lon=-91.67, lat=41.97)], headers=device_headers(device))
    assert r.status_code == 200, r.text
    v = await open_viewer(server.ws_url, coord)
    try:
        await v.subscribe(topics=["positions"], bbox=box)

        def carrying(lon: float) -> Any:
            return lambda m: (
                m.get("type") == "delta" and any(i["key"] == rid and i["data"].get("lon") == lon for i in m["items"])
            )

        r = await client.post("/v1/positions", json=[fix(lon=-91.66, lat=41.97)], headers=device_headers(device))
        assert r.status_code == 200
        await v.next(carrying(-91.66))
        r = await client.post("/v1/positions", json=[fix(lon=-91.60, lat=41.97)], headers=device_headers(device))
        assert r.status_code == 200
        await v.next(carrying(-91.60))  # outside the box: its last update there
        # (What arrived before is no answer to the next question: the first fix, posted before the
        # subscription, may also have come as a delta after the snapshot.)
        v.messages.clear()
        r = await client.post("/v1/positions", json=[fix(lon=-91.59, lat=41.97)], headers=device_headers(device))
        assert r.status_code == 200
        try:
            await v.next(lambda m: m.get("type") == "delta" and any(i["key"] == rid for i in m["items"]), timeout=1.0)
        except AssertionError:
            pass
        else:
            raise AssertionError("a responder outside the box kept reaching the viewer")
    finally:
        await v.ws.close()
