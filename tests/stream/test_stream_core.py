"""The stream's pure parts, without a server: coalescing, areas, protocol parsing, scoping,
group frames shared by every member, and the bounded viewer queue."""

from __future__ import annotations

import asyncio
import json
import uuid

import h3.api.basic_int as h3i
import pytest

from server.bus import Change
from server.security import Principal
from server.settings import StreamSettings
from server.stream.area import Area
from server.stream.groups import Group, group_key
from server.stream.protocol import Ping, Resume, StreamError, Subscribe, parse_message
from server.stream.scope import Scope, check_topics, scope_for
from server.stream.ticks import Coalescer, decode_batch, encode_batch
from server.stream.viewer import CLOSE_TOO_SLOW, Frame, Viewer, ViewerClosed, ViewerSub

S = StreamSettings()
CITY = (-91.6656, 41.9779)


def change(key: str, lon: float = CITY[0], lat: float = CITY[1], **kw: object) -> Change:
    return Change(topic=kw.pop("topic", "positions"), key=key, data={"id": key, "lon": lon, **kw}, lon=lon, lat=lat)  # type: ignore[arg-type]


def principal(role: str, team: uuid.UUID | None = None, rsp: uuid.UUID | None = None) -> Principal:
    return Principal("user", uuid.uuid4(), role, role, team, rsp)


def test_coalescer_keeps_only_newest_state_per_topic_and_key() -> None:
    c = Coalescer()
    c.add([change("a", v=1), change("b", v=1)])
    c.add([change("a", v=2), change("a", topic="incidents", v=9)])
    out = c.drain()
    assert len(out) == 3 and len(c) == 0
    assert {(x.topic, x.key): x.data["v"] for x in out} == {
        ("positions", "a"): 2,
        ("positions", "b"): 1,
        ("incidents", "a"): 9,
    }


def test_batch_round_trip_keeps_accepted_at_and_raw_data() -> None:
    ch = change("r1", speed=3.5)
    batch = decode_batch("ep", 7, encode_batch([ch], "w1", t=123.0))
    assert batch.seq == 7 and batch.t == 123.0 and batch.worker == "w1"
    item = json.loads(batch.items[0].json)
    assert item == {"topic": "positions", "key": "r1", "data": ch.data, "accepted_at": ch.accepted_at}


def test_bbox_area_matches_points_and_boxes() -> None:
    area = Area(bbox=(-92.0, 41.0, -91.0, 42.0))
    assert area.matches(-91.5, 41.5, None)
    assert not area.matches(-93.0, 41.5, None)
    assert area.matches(None, None, (-91.2, 41.9, -90.0, 43.0))
    assert not area.matches(None, None, (-90.5, 41.9, -90.0, 43.0))
    assert area.matches(None, None, None)  # unlocated changes reach every area


def test_cell_area_matches_points_in_any_resolution() -> None:
    coarse = h3i.latlng_to_cell(CITY[1], CITY[0], 6)
    fine_elsewhere = h3i.latlng_to_cell(40.0, -100.0, 9)
    msg = {
        "type": "subscribe",
        "topics": ["positions"],
        "cells": [h3i.int_to_str(coarse), h3i.int_to_str(fine_elsewhere)],
    }
    sub = parse_message(json.dumps(msg), S)
    assert isinstance(sub, Subscribe)
    assert sub.area.matches(CITY[0], CITY[1], None)
    assert sub.area.matches(-100.0, 40.0, None)
    assert not sub.area.matches(-95.0, 41.0, None)


def test_bbox_is_widened_to_a_grid_so_nearly_equal_views_share_one_area() -> None:
    import math
    import random

    from server.stream.protocol import snap_bbox

    rng = random.Random(3)
    snapped = set()
    for _ in range(2000):
        # A city view (~8 x 9 km) panned around the city, as the stream bench's viewers are.
        lon, lat = CITY[0] + rng.uniform(-0.05, 0.05), CITY[1] + rng.uniform(-0.04, 0.04)
        asked = (lon - 0.05, lat - 0.04, lon + 0.05, lat + 0.04)
        x0, y0, x1, y1 = got = snap_bbox(asked, 8)
        assert x0 <= asked[0] and y0 <= asked[1] and x1 >= asked[2] and y1 >= asked[3]
        step = 2.0 ** math.floor(math.log2(0.1 / 8))
        assert all(v / step == int(v / step) for v in got)  # on the grid, exactly
        assert max(asked[0] - x0, asked[1] - y0, x1 - asked[2], y1 - asked[3]) < 0.1 / 8
        snapped.add(got)
    assert len(snapped) < 500  # 2,000 views, a quarter as many areas (groups)
    # Through the parser, with the default grid; clamped to the world; 0 or a point box stay exact.
    sub = parse_message(json.dumps({"type": "subscribe", "topics": ["positions"], "bbox": [1.01, 2.02, 1.11, 2.1]}), S)
    assert isinstance(sub, Subscribe) and sub.area.bbox == snap_bbox((1.01, 2.02, 1.11, 2.1), S.stream_bbox_grid)
    assert snap_bbox((-179.99, -89.99, 179.99, 89.99), 8) == (-180.0, -90.0, 180.0, 90.0)
    assert snap_bbox((1.01, 2.02, 1.11, 2.1), 0) == (1.01, 2.02, 1.11, 2.1)
    assert snap_bbox((1.01, 2.02, 1.01, 2.02), 8) == (1.01, 2.02, 1.01, 2.02)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1,2]", "invalid_message"),
        ('{"type":"dance"}', "unknown_type"),
        ('{"type":"subscribe"}', "invalid_message"),
        ('{"type":"subscribe","topics":["weather"]}', "unknown_topic"),
        ('{"type":"subscribe","topics":["positions"],"bbox":[1,2,3]}', "invalid_area"),
        ('{"type":"subscribe","topics":["positions"],"bbox":[0,0,200,10]}', "invalid_area"),
        ('{"type":"subscribe","topics":["positions"],"bbox":[10,0,5,10]}', "invalid_area"),
        ('{"type":"subscribe","topics":["positions"],"bbox":[-180,-90,180,90]}', "area_too_large"),
        ('{"type":"subscribe","topics":["positions"],"cells":["zz"]}', "invalid_area"),
        ('{"type":"subscribe","topics":["positions"],"bbox":[0,0,1,1],"cells":["8928308280fffff"]}', "invalid_area"),
        ('{"type":"subscribe","topics":["positions"],"max_rate_hz":0}', "invalid_message"),
        ('{"type":"subscribe","topics":["positions"],"colour":"red"}', "invalid_message"),
        ('{"type":"resume","epoch":"x"}', "invalid_message"),
        ('{"type":"resume","epoch":"x","from_seq":-1}', "invalid_message"),
        ("x" * 300_000, "message_too_large"),
    ],
)
def test_bad_messages_raise_coded_errors(raw: str, code: str) -> None:
    with pytest.raises(StreamError) as info:
        parse_message(raw, S)
    assert info.value.code == code and info.value.to_message()["type"] == "error"


def test_good_messages_parse() -> None:
    sub = parse_message('{"type":"subscribe","id":"s1","topics":["positions","hazards"],"max_rate_hz":50}', S)
    assert isinstance(sub, Subscribe) and sub.max_rate_hz == S.stream_max_rate_hz and sub.area.everywhere
    assert parse_message('{"type":"resume","epoch":"e1","from_seq":5}', S) == Resume("e1", 5)
    assert parse_message('{"type":"ping","id":"p"}', S) == Ping("p")


def test_role_scopes() -> None:
    team, other, me = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    responder = scope_for(principal("responder", uuid.UUID(team), uuid.UUID(me)))
    assert responder.allows("positions", "x", team, (), False)
    assert not responder.allows("positions", "x", other, (), False)
    assert responder.allows("positions", me, other, (), False)  # itself, whatever team
    assert responder.allows("incidents", "i", other, (me,), False)  # assigned to it
    assert not responder.allows("incidents", "i", other, ("someone",), False)
    assert responder.allows("hazards", "h", None, (), False)
    viewer = scope_for(principal("viewer"))
    assert viewer.allows("hazards", "h", None, (), True) and not viewer.allows("hazards", "h", None, (), False)
    assert scope_for(principal("coordinator")).allows("positions", "x", other, (), False)
    with pytest.raises(StreamError) as info:
        check_topics(principal("viewer"), frozenset({"positions", "hazards"}), "s1")
    assert info.value.code == "forbidden_topic"
    check_topics(principal("viewer"), frozenset({"hazards", "alerts"}), "s1")


async def test_group_coalesces_and_shares_one_encoded_frame() -> None:
    area = Area(bbox=(-92.0, 41.0, -91.0, 42.0))
    scope = Scope("all")
    group = Group(
        group_key(frozenset({"positions"}), area, 10, scope), frozenset({"positions"}), area, 10, scope, lambda: "ep"
    )
    viewers = [Viewer(principal("admin"), scope, 8, lambda v: None) for _ in range(3)]
    for i, v in enumerate(viewers):
        sub = ViewerSub(f"s{i}", v, group, holding=False)
        group.members.add(sub)
    group.offer(decode_batch("ep", 1, encode_batch([change("a", v=1), change("far", lon=10.0)], "w")))
    # Within the rate interval: the next batches coalesce into one frame with the newest "a".
    group.offer(decode_batch("ep", 2, encode_batch([change("a", v=2), change("b", v=1)], "w")))
    group.offer(decode_batch("ep", 3, encode_batch([change("a", v=3)], "w")))
    first = [await v.next_frames() for v in viewers]
    assert all(len(f) == 1 for f in first)
    assert [json.loads(f[0].text)["items"][0]["key"] for f in first] == ["a", "a", "a"]
    await asyncio.sleep(0.15)
    second = [await v.next_frames() for v in viewers]
    texts = [f[0].text for f in second]
    assert texts[0] is texts[1] is texts[2]  # encoded once, shared
    frame = json.loads(texts[0])
    assert frame["seq"] == 3 and frame["epoch"] == "ep"
    assert {i["key"]: i["data"]["v"] for i in frame["items"]} == {"a": 3, "b": 1}
    assert all("accepted_at" in i for i in frame["items"])


async def test_viewer_queue_is_bounded_and_drops_with_4008() -> None:
    dropped: list[Viewer] = []
    viewer = Viewer(principal("admin"), Scope("all"), 4, dropped.append)
    for i in range(4):
        assert viewer.put(Frame("delta", i, "{}"))
    assert not viewer.put(Frame("delta", 5, "{}"))
    assert dropped == [viewer] and viewer.queued == 0
    with pytest.raises(ViewerClosed) as info:
        await viewer.next_frames()
    assert info.value.code == CLOSE_TOO_SLOW and "too slow" in info.value.reason


async def test_router_gives_many_box_groups_exactly_what_asking_each_group_gives() -> None:
    from server.stream.router import MIN_GROUPS, Router

    scope = Scope("all")
    rng = __import__("random").Random(7)

    def groups() -> list[Group]:
        out = []
        for i in range(MIN_GROUPS * 3):
            lon, lat = CITY[0] + rng.uniform(-0.05, 0.05), CITY[1] + rng.uniform(-0.04, 0.04)
            topics = frozenset({"positions"} if i % 3 else {"positions", "incidents"})
            area = Area(bbox=(lon - 0.03, lat - 0.02, lon + 0.03, lat + 0.02)) if i % 5 else Area()
            g = Group(group_key(topics, area, 1, scope), topics, area, 1, scope, lambda: "ep")
            g._last_flush = 1e18  # hold everything pending so it can be compared
            out.append(g)
        return out

    changes = [
        change(f"p{i}", CITY[0] + rng.uniform(-0.08, 0.08), CITY[1] + rng.uniform(-0.06, 0.06), v=i) for i in range(200)
    ]
    changes += [change("inc", CITY[0], CITY[1], topic="incidents"), change("hz", topic="hazards")]
    changes += [
        Change(topic="incidents", key="nowhere", data={}),
        Change(topic="positions", key="box", data={}, bbox=(-92.0, 41.9, -91.6, 42.0)),
    ]  # type: ignore[arg-type]
    batch = decode_batch("ep", 5, encode_batch(changes, "w"))
    rng.seed(1)
    plain = groups()
    rng.seed(1)
    routed = groups()
    for g in plain:
        g.offer(batch)
    router = Router()
    router.deliver(batch, routed, 1)
    router.route_pending(flush=False)
    assert [g._pending for g in routed] == [g._pending for g in plain]
    assert sum(len(g._pending) for g in plain) > 500
    for g in plain + routed:
        g.close()


def box_groups(n: int, rate: float) -> tuple[list[Group], list[Viewer]]:
    """``n`` box groups around the city (distinct boxes), each with one member."""
    scope = Scope("all")
    groups, viewers = [], []
    for i in range(n):
        area = Area(bbox=(CITY[0] - 0.1 - i * 1e-5, CITY[1] - 0.1, CITY[0] + 0.1, CITY[1] + 0.1))
        g = Group(
            group_key(frozenset({"positions"}), area, rate, scope),
            frozenset({"positions"}),
            area,
            rate,
            scope,
            lambda: "ep",
        )
        v = Viewer(principal("coordinator"), scope, 64, lambda v: None)
        g.add(ViewerSub("s", v, g, holding=False))
        groups.append(g)
        viewers.append(v)
    return groups, viewers


async def test_router_lanes_route_queued_batches_once_per_tick_newest_state_per_key() -> None:
    from server.stream.router import MIN_GROUPS, Router

    scope = Scope("all")
    rate = 20.0
    groups, viewers = box_groups(MIN_GROUPS + 4, rate)
    far = Area(bbox=(0.0, 0.0, 1.0, 1.0))
    groups.append(
        Group(
            group_key(frozenset({"positions"}), far, rate, scope),
            frozenset({"positions"}),
            far,
            rate,
            scope,
            lambda: "ep",
        )
    )
    router = Router()
    router.deliver(decode_batch("ep", 1, encode_batch([change("a", v=1)], "w")), groups, 1)
    await asyncio.sleep(0)  # the first batch after a quiet interval goes at once
    assert all(v.queued == 1 for v in viewers)
    # Two more batches within the interval: one frame per group at the lane's next tick, newest per key.
    router.deliver(decode_batch("ep", 2, encode_batch([change("a", v=2), change("b", v=1)], "w")), groups, 1)
    router.deliver(decode_batch("ep", 3, encode_batch([change("a", v=3)], "w")), groups, 1)
    await asyncio.sleep(0.01)
    assert all(v.queued == 1 for v in viewers)
    await asyncio.sleep(1 / rate + 0.03)
    for v in viewers:
        frames = await v.next_frames()
        assert len(frames) == 2
        last = json.loads(frames[1].text)
        assert last["seq"] == 3
        assert {(it["key"], it["data"]["v"]) for it in last["items"]} == {("a", 3), ("b", 1)}
    assert not groups[-1]._pending  # nothing in its box
    for g in groups:
        g.close()


async def test_router_splits_a_big_lane_into_slots_that_take_turns_each_at_most_once_per_interval() -> None:
    """Thousands of box groups are not flushed in one loop turn: a lane's slots route in turn,
    spread over the interval; every group still gets one frame per interval with the newest state."""
    from server.stream.router import SLOT_GROUPS, Router

    rate = 10.0
    groups, viewers = box_groups(SLOT_GROUPS * 3 + 5, rate)
    router = Router()
    router.deliver(decode_batch("ep", 1, encode_batch([change("a", v=1)], "w")), groups, 1)
    lane = next(iter(router._lanes.values()))
    assert len(lane.slots) == 4 and all(len(s.groups) <= SLOT_GROUPS for s in lane.slots)
    await asyncio.sleep(0)
    first = sum(v.queued for v in viewers)
    assert 0 < first <= SLOT_GROUPS  # one slot at once, not the whole lane
    await asyncio.sleep(1 / rate + 0.05)
    assert all(v.queued == 1 for v in viewers)  # the other slots followed within the interval
    # Two batches in quick succession: each group one more frame, with the newest state of each key.
    router.deliver(decode_batch("ep", 2, encode_batch([change("a", v=2), change("b", v=1)], "w")), groups, 1)
    router.deliver(decode_batch("ep", 3, encode_batch([change("a", v=3)], "w")), groups, 1)
    await asyncio.sleep(1 / rate + 0.08)
    for v in viewers:
        frames = await v.next_frames()
        assert len(frames) == 2
        last = json.loads(frames[1].text)
        assert last["seq"] == 3
        assert {(it["key"], it["data"]["v"]) for it in last["items"]} == {("a", 3), ("b", 1)}
    for g in groups:
        g.close()


async def test_router_flushes_a_slot_over_several_loop_turns_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no time left in a loop turn a slot flushes a few groups per turn (the Redis subscriber,
    the publisher and ingest run in between); a regrouping meanwhile loses none of the tick."""
    from server.stream import router as router_mod

    monkeypatch.setattr(router_mod, "QUANTUM_S", 0.0)
    groups, viewers = box_groups(router_mod.MIN_GROUPS + 20, 10.0)
    router = router_mod.Router()
    router.deliver(decode_batch("ep", 1, encode_batch([change("a", v=1)], "w")), groups, 1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert 0 < sum(v.queued for v in viewers) < len(viewers)
    # A group leaves (a new index) while the tick is half sent: the rest still get it.
    groups[-1].members.clear()
    router.deliver(decode_batch("ep", 2, encode_batch([], "w")), groups[:-1], 2)
    for _ in range(20):
        await asyncio.sleep(0)
    assert all(v.queued == 1 for v in viewers[:-1])
    for g in groups:
        g.close()
