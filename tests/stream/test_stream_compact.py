"""The compact positions encoding: pure (encoding, group meta bookkeeping, protocol) and against the
real server (snapshot, deltas, a status change, json and compact viewers side by side, resume)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from server.bus import Change
from server.security import Principal
from server.settings import StreamSettings
from server.stream.area import Area
from server.stream.compact import FLAG_DELETED, FLAG_STALE, HANDLES, accepted_ms, expand, ids_of
from server.stream.groups import SNAPSHOT_SHARE_S, Group, group_key
from server.stream.protocol import StreamError, Subscribe, parse_message
from server.stream.scope import Scope
from server.stream.ticks import decode_batch, encode_batch
from server.stream.viewer import Viewer, ViewerSub
from tests.conftest import Database, ServerProcess, login
from tests.positions.helpers import device_headers, fix, iso, new_device, unique_time

from .helpers import Viewer as WsViewer
from .helpers import open_viewer

S = StreamSettings()
CITY = (-91.6656, 41.9779)
TEAM = str(uuid.uuid4())


def position(rid: str, k: int, **over: Any) -> Change:
    """A positions change shaped like the ingest batcher's."""
    lon, lat = CITY[0] + k * 0.00012345678, CITY[1] - k * 0.00009876543
    data: dict[str, Any] = {
        "id": rid,
        "callsign": f"E1-{rid[:3]}",
        "lon": lon,
        "lat": lat,
        "fix_time": (datetime(2026, 5, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=k, microseconds=123456))
        .isoformat()
        .replace("+00:00", "Z"),
        "accuracy_m": 4.25 + k,
        "speed_mps": 1.37 * k if k % 3 else None,
        "heading_deg": (37.44 * k) % 360,
        "battery_pct": 81.6 - k,
        "status": "available",
        "stale": k % 4 == 3,
        "h3": "89267450d27ffff",
    }
    data.update(over)
    return Change("positions", rid, data, accepted_at=1777636800.123456 + k, lon=lon, lat=lat, team_id=TEAM)


def member(group: Group, resuming: bool = False) -> Viewer:
    viewer = Viewer(
        Principal("user", uuid.uuid4(), "coord", "coordinator", None, None), Scope("all"), 64, lambda v: None
    )
    group.add(ViewerSub(f"s{id(viewer)}", viewer, group, holding=False), resuming=resuming)
    return viewer


def new_group(encoding: str, area: Area | None = None) -> Group:
    area = area or Area(bbox=(-92.0, 41.0, -91.0, 42.5))
    key = group_key(frozenset({"positions", "incidents"}), area, 10, Scope("all"), encoding)
    return Group(key, frozenset({"positions", "incidents"}), area, 10, Scope("all"), lambda: "ep", encoding=encoding)


def box_near_city(rng: Any, spread: tuple[float, float], half: tuple[float, float]) -> Area:
    """A box of half-size ``half`` (lon, lat) centred within ``spread`` of the city, drawn from ``rng``."""
    lon, lat = CITY[0] + rng.uniform(-spread[0], spread[0]), CITY[1] + rng.uniform(-spread[1], spread[1])
    return Area(bbox=(lon - half[0], lat - half[1], lon + half[0], lat + half[1]))


def twins(
    boxes: list[Area], encodings: list[str] | None = None
) -> tuple[list[Group], list[Group], list[Viewer], list[Viewer]]:
    """Two groups per box, each with one member: ``plain`` ones that take batches themselves and
    ``routed`` ones for a lane (their viewers in the same order)."""
    encodings = encodings or ["compact"] * len(boxes)
    plain = [new_group(e, a) for e, a in zip(encodings, boxes, strict=True)]
    routed = [new_group(e, a) for e, a in zip(encodings, boxes, strict=True)]
    return plain, routed, [member(g) for g in plain], [member(g) for g in routed]


def assert_same(compact_data: dict[str, Any], json_data: dict[str, Any]) -> None:
    """What a compact position + meta decode to equals the json form (within the documented rounding)."""
    assert compact_data["id"] == json_data["id"]
    assert compact_data["lon"] == pytest.approx(json_data["lon"], abs=5e-7)
    assert compact_data["lat"] == pytest.approx(json_data["lat"], abs=5e-7)
    fix_ms = datetime.fromisoformat(compact_data["fix_time"]).timestamp() * 1000
    assert fix_ms == pytest.approx(datetime.fromisoformat(json_data["fix_time"]).timestamp() * 1000, abs=0.5)
    for name in ("speed_mps", "heading_deg", "accuracy_m"):
        if json_data[name] is None:
            assert compact_data[name] is None
        else:
            assert compact_data[name] == pytest.approx(json_data[name], abs=0.0501)
    assert compact_data["stale"] is json_data["stale"]
    for name in ("callsign", "status"):
        assert compact_data[name] == json_data[name]
    battery = json_data["battery_pct"]
    assert compact_data["battery_pct"] == (None if battery is None else round(battery))


async def test_compact_items_decode_to_the_json_forms_values() -> None:
    changes = [position(f"r{k:02d}", k) for k in range(12)] + [
        Change("incidents", "i1", {"id": "i1", "title": "Fire"}, lon=CITY[0], lat=CITY[1])
    ]
    batch = decode_batch("ep", 4, encode_batch(changes, "w"))
    jg, cg = new_group("json"), new_group("compact")
    jv, cv = member(jg), member(cg)
    jg.offer(batch)
    cg.offer(batch)
    jframe = json.loads((await jv.next_frames())[0].text)
    cframe = json.loads((await cv.next_frames())[0].text)
    assert "encoding" not in jframe and cframe["encoding"] == "compact"
    assert (cframe["type"], cframe["epoch"], cframe["seq"]) == (jframe["type"], jframe["epoch"], jframe["seq"])
    by_key = {i["key"]: i for i in jframe["items"]}
    # Other topics keep their json objects; positions become arrays, with meta on first sight.
    assert [i["key"] for i in cframe["items"]] == ["i1"] and cframe["items"][0] == by_key["i1"]
    metas = {m[5]: m for m in cframe["meta"]}  # by handle
    assert len(cframe["positions"]) == len(metas) == 12
    for p in cframe["positions"]:
        assert isinstance(p[0], int) and metas[p[0]][5] == p[0] == HANDLES(metas[p[0]][0])
        j = by_key[metas[p[0]][0]]
        data = expand(p, metas[p[0]])
        assert_same(data, j["data"])
        assert data["team_id"] == TEAM
        assert accepted_ms(p) == round(j["accepted_at"] * 1000)
        assert isinstance(p[3], int) and isinstance(p[8], int) and p[3] + p[8] == accepted_ms(p)
        assert bool(p[7] & FLAG_STALE) is j["data"]["stale"]
    # A moving responder costs well under 80 bytes per tick once its meta is known (a handle, not its
    # UUID; acceptance relative to the fix time).
    assert max(len(json.dumps(p, separators=(",", ":"))) for p in cframe["positions"]) < 75


async def test_compact_group_sends_meta_only_when_it_changes() -> None:
    group = new_group("compact")
    viewer = member(group)

    async def frame(*changes: Change, seq: int) -> dict[str, Any]:
        group._last_flush = 0.0  # no rate wait in the test
        group.offer(decode_batch("ep", seq, encode_batch(list(changes), "w")))
        return json.loads((await viewer.next_frames())[-1].text)

    first = await frame(position("a", 1), position("b", 2), seq=1)
    assert {m[0] for m in first["meta"]} == {"a", "b"}
    moved = await frame(position("a", 5), position("b", 6), seq=2)  # battery moves with k: whole percent
    assert {m[0] for m in moved["meta"]} == {"a", "b"}
    same = await frame(position("a", 5, lon=CITY[0] + 0.01), position("b", 6, lon=CITY[0] + 0.02), seq=3)
    assert same["meta"] == [] and len(same["positions"]) == 2
    busy = await frame(position("a", 5, status="busy"), position("b", 6), seq=4)
    assert busy["meta"] == [["a", "E1-a", "busy", TEAM, 77, HANDLES("a")]] and len(busy["positions"]) == 2
    gone = await frame(
        Change("positions", "b", {"id": "b", "deleted": True}, accepted_at=1777636800.5, lon=CITY[0], lat=CITY[1]),
        seq=5,
    )
    assert gone["meta"] == [] and gone["positions"][0][0] == HANDLES("b") and gone["positions"][0][7] & FLAG_DELETED
    assert expand(gone["positions"][0], rid="b") == {"id": "b", "deleted": True}
    assert accepted_ms(gone["positions"][0]) == 1777636800500  # no fix time: absolute
    # A viewer joining a bbox group costs the others nothing: no meta is sent again. Its snapshot has
    # the metas of the responders in the area plus every other one the group sent (metas_outside).
    member(group)
    again = await frame(position("a", 5, status="busy"), seq=6)
    assert again["meta"] == [] and len(again["positions"]) == 1
    outside = {json.loads(m)[0]: json.loads(m) for m in group.metas_outside({})}
    assert outside["a"] == ["a", "E1-a", "busy", TEAM, 77, HANDLES("a")]
    assert "a" not in {json.loads(m)[0] for m in group.metas_outside({"a": b"[]"})}
    # The whole-map group does not (its snapshot has every responder's meta).
    everywhere = new_group("compact", Area())
    v = member(everywhere)
    everywhere.offer(decode_batch("ep", 7, encode_batch([position("a", 5)], "w")))
    assert len(json.loads((await v.next_frames())[0].text)["meta"]) == 1
    member(everywhere)
    everywhere._last_flush = 0.0
    everywhere.offer(decode_batch("ep", 8, encode_batch([position("a", 5)], "w")))
    assert json.loads((await v.next_frames())[0].text)["meta"] == []
    assert everywhere.metas_outside({}) == []  # (its snapshot has them all)
    # A resuming viewer gets replayed deltas, no snapshot, and handles hold on one connection only: the
    # group sends every meta again on next sight.
    resuming = Viewer(
        Principal("user", uuid.uuid4(), "c2", "coordinator", None, None), Scope("all"), 64, lambda v: None
    )
    everywhere.add(ViewerSub("r", resuming, everywhere, holding=False), resuming=True)
    everywhere._last_flush = 0.0
    everywhere.offer(decode_batch("ep", 9, encode_batch([position("a", 5)], "w")))
    assert [m[0] for m in json.loads((await v.next_frames())[0].text)["meta"]] == ["a"]
    for g in (group, everywhere):
        g.close()


async def test_replayed_compact_batches_carry_every_meta() -> None:
    group = new_group("compact")
    member(group)
    group.offer(decode_batch("ep", 1, encode_batch([position("a", 1)], "w")))
    replay = group.replay_frame(decode_batch("ep", 1, encode_batch([position("a", 1)], "w")))
    assert replay is not None
    body = json.loads(replay.text)
    assert body["seq"] == 1 and [m[0] for m in body["meta"]] == ["a"] and len(body["positions"]) == 1
    group.close()


def test_encoding_is_parsed_and_keys_groups() -> None:
    sub = parse_message('{"type":"subscribe","topics":["positions"],"encoding":"compact"}', S)
    assert isinstance(sub, Subscribe) and sub.encoding == "compact"
    plain = parse_message('{"type":"subscribe","topics":["positions"]}', S)
    assert isinstance(plain, Subscribe) and plain.encoding == "json"
    with pytest.raises(StreamError) as info:
        parse_message('{"type":"subscribe","topics":["positions"],"encoding":"protobuf"}', S)
    assert info.value.code == "invalid_message" and "encoding" in info.value.message
    area, scope = Area(), Scope("all")
    t = frozenset({"positions"})
    assert group_key(t, area, 10, scope, "json") != group_key(t, area, 10, scope, "compact")
    assert group_key(t, area, 10, scope, "compact") == group_key(t, area, 10, scope, "compact")


# ---- against the server --------------------------------------------------------------------
def positions_of(msg: dict[str, Any], handles: dict[int, str] | None = None) -> dict[str, dict[str, Any]]:
    """Decoded compact positions of a snapshot or delta, by responder (meta merged when present);
    ``handles``: what the connection learned before (a viewer's ``handles``)."""
    ids = {**(handles or {}), **ids_of(msg.get("meta", []))}
    metas = {m[5]: m for m in msg.get("meta", [])}
    return {ids[p[0]]: expand(p, metas.get(p[0]), ids[p[0]]) for p in msg.get("positions", [])}


async def compact_item(v: WsViewer, rid: str, pred: Any = lambda d: True, timeout: float = 5.0) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def match(m: dict[str, Any]) -> bool:
        if m.get("type") != "delta" or m.get("encoding") != "compact":
            return False
        data = positions_of(m, v.handles).get(rid)
        if data is not None and pred(data):
            found["data"], found["frame"] = data, m
            return True
        return False

    await v.next(match, timeout)
    return found


async def test_compact_snapshot_matches_the_json_snapshot(server: ServerProcess, client: httpx.AsyncClient) -> None:
    token = await login(client, "coord")
    v = await open_viewer(server.ws_url, token)
    try:
        j = await v.subscribe(id="j", topics=["positions", "incidents"])
        c = await v.subscribe(id="c", topics=["positions", "incidents"], encoding="compact")
        assert c["type"] == "snapshot" and c["encoding"] == "compact" and "encoding" not in j
        jpos = {i["key"]: i for i in j["items"] if i["topic"] == "positions"}
        cpos = positions_of(c)
        assert set(cpos) == set(jpos) and len(cpos) >= 10
        assert {m[0] for m in c["meta"]} == set(jpos)
        for rid, data in cpos.items():
            assert_same(data, jpos[rid]["data"])
        handles = ids_of(c["meta"])
        accepted = {handles[p[0]]: accepted_ms(p) for p in c["positions"]}
        assert all(accepted[k] == round(i["accepted_at"] * 1000) for k, i in jpos.items())
        # Incidents stay json objects in a compact snapshot.
        assert [i for i in c["items"] if i["topic"] == "incidents"] == [
            i for i in j["items"] if i["topic"] == "incidents"
        ]
        assert not any(i["topic"] == "positions" for i in c["items"])
    finally:
        await v.ws.close()


async def test_json_and_compact_viewers_on_one_area_each_get_their_form(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    token = await login(client, "coord")
    bbox = [-91.80, 41.90, -91.55, 42.06]
    jv = await open_viewer(server.ws_url, token)
    cv = await open_viewer(server.ws_url, token)
    try:
        await jv.subscribe(topics=["positions"], bbox=bbox)
        await cv.subscribe(topics=["positions"], bbox=bbox, encoding="compact")
        device = database.devices[7]
        rid = device["responder_id"]
        body = fix(lon=-91.6612345678, lat=41.9812345678, speed_mps=2.345, heading_deg=91.25, battery_pct=64.4)
        r = await client.post("/v1/positions", json=[body], headers=device_headers(device))
        assert r.status_code == 200, r.text
        jframe, jitem = await jv.item("positions", rid, lambda d: d["fix_time"] == body["fix_time"])
        got = await compact_item(cv, rid, lambda d: d["lon"] == pytest.approx(-91.661235, abs=1e-9))
        assert "encoding" not in jframe and all(isinstance(i, dict) for i in jframe["items"])
        assert got["frame"]["items"] == [] or all(i["topic"] != "positions" for i in got["frame"]["items"])
        assert_same(got["data"], jitem["data"])
        compact_pos = next(p for p in got["frame"]["positions"] if cv.handles[p[0]] == rid)
        assert accepted_ms(compact_pos) == round(jitem["accepted_at"] * 1000)
        assert got["frame"]["seq"] == jframe["seq"] and got["frame"]["epoch"] == jframe["epoch"]
    finally:
        await jv.ws.close()
        await cv.ws.close()


async def test_status_change_reaches_a_compact_viewer(
    server: ServerProcess, client: httpx.AsyncClient, database: Database, admin_headers: dict[str, str]
) -> None:
    token = await login(client, "coord")
    v = await open_viewer(server.ws_url, token)
    device = database.devices[9]
    rid = device["responder_id"]
    try:
        snap = await v.subscribe(topics=["positions"], encoding="compact")
        before = positions_of(snap)[rid]
        # The snapshot told the viewer this responder's meta: a fix that changes none of it sends none.
        same = fix() if before["battery_pct"] is None else fix(battery_pct=before["battery_pct"])
        r = await client.post("/v1/positions", json=[same], headers=device_headers(device))
        assert r.status_code == 200, r.text
        quiet = await compact_item(v, rid, lambda d: d["lon"] == pytest.approx(same["lon"], abs=1e-6))
        assert "status" not in quiet["data"]
        new_status = "off_duty" if before["status"] != "off_duty" else "available"
        # A coordinator's status change reaches the map at once, without waiting for the next fix: the
        # marker stays where the last fix put it.
        r = await client.patch(f"/v1/responders/{rid}", json={"status": new_status}, headers=admin_headers)
        assert r.status_code == 200, r.text
        got = await compact_item(v, rid, lambda d: d.get("status") == new_status)
        assert got["data"]["callsign"] == before["callsign"] and got["data"]["stale"] is False
        assert got["data"]["lon"] == pytest.approx(same["lon"], abs=1e-6)
        # The next fix with the same meta carries none.
        moved = fix(lon=got["data"]["lon"] + 0.0005)
        r = await client.post("/v1/positions", json=[moved], headers=device_headers(device))
        later = await compact_item(v, rid, lambda d: d["lon"] == pytest.approx(moved["lon"], abs=1e-6))
        assert "status" not in later["data"]
        # A stale position is flagged in the compact item itself (a new responder's first fix, an hour old),
        # and a responder the viewer has not seen yet arrives with its meta.
        other = await new_device(client, admin_headers)
        old = iso(unique_time(seconds_ago=3600))
        r = await client.post("/v1/positions", json=[fix(fix_time=old)], headers=device_headers(other))
        assert r.status_code == 200, r.text
        stale = await compact_item(v, other["responder_id"])
        assert stale["data"]["stale"] is True and stale["data"]["callsign"].startswith("T-")
    finally:
        await client.patch(f"/v1/responders/{rid}", json={"status": "available"}, headers=admin_headers)
        await v.ws.close()


async def test_compact_resume_replays_missed_batches_in_compact_form(
    server: ServerProcess, client: httpx.AsyncClient, database: Database
) -> None:
    token = await login(client, "coord")
    v = await open_viewer(server.ws_url, token)
    snap = await v.subscribe(topics=["positions"], encoding="compact")
    await v.ws.close()
    devices = database.devices[11:13]
    for d in devices:
        r = await client.post("/v1/positions", json=[fix()], headers=device_headers(d))
        assert r.status_code == 200
        await asyncio.sleep(0.08)
    await asyncio.sleep(0.2)
    v = await open_viewer(server.ws_url, token)
    try:
        resumed = await v.subscribe(topics=["positions"], encoding="compact", epoch=snap["epoch"], from_seq=snap["seq"])
        assert resumed["type"] == "resumed"
        seen: dict[str, dict[str, Any]] = {}
        while not {d["responder_id"] for d in devices} <= set(seen):
            frame = await v.of_type("delta")
            assert frame["encoding"] == "compact" and frame["seq"] > snap["seq"]
            seen.update(positions_of(frame, v.handles))
        assert all("callsign" in seen[d["responder_id"]] for d in devices)  # replay carries meta
        # A live delta's responder that was in no replayed batch comes with its meta (and so its handle)
        # on this connection too.
        late = database.devices[14]
        r = await client.post("/v1/positions", json=[fix()], headers=device_headers(late))
        assert r.status_code == 200
        got = await compact_item(v, late["responder_id"])
        assert "callsign" in got["data"]
    finally:
        await v.ws.close()


async def test_sse_takes_the_compact_encoding(server: ServerProcess, client: httpx.AsyncClient) -> None:
    from .test_stream_server import SSEReader

    headers = {"Authorization": f"Bearer {await login(client, 'coord')}"}
    async with client.stream("GET", "/v1/stream/sse?topics=positions&encoding=compact", headers=headers) as r:
        assert r.status_code == 200
        snap = json.loads((await SSEReader(r).next())["data"])
        assert snap["type"] == "snapshot" and snap["encoding"] == "compact" and snap["positions"] and snap["meta"]
    r = await client.get("/v1/stream/sse?topics=positions&encoding=xml", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "encoding"


async def test_an_odd_positions_change_reaches_compact_viewers_as_json() -> None:
    odd = Change("positions", "x", {"id": "x", "lon": "east", "fix_time": "yesterday"}, lon=CITY[0], lat=CITY[1])
    group = new_group("compact")
    viewer = member(group)
    group.offer(decode_batch("ep", 1, encode_batch([odd, position("a", 1)], "w")))
    frame = json.loads((await viewer.next_frames())[0].text)
    assert [i["key"] for i in frame["items"]] == ["x"] and [p[0] for p in frame["positions"]] == [HANDLES("a")]
    group.close()


async def test_router_lane_frames_carry_the_same_meta_as_the_per_group_path() -> None:
    """A box group routed by a lane (``flush_tick``, meta checked as set membership) sends the same
    positions and metas as the same group taking each batch itself (``offer``)."""
    from server.stream.router import MIN_GROUPS, Router

    plain = new_group("compact")
    plain_viewer = member(plain)
    routed = [new_group("compact") for _ in range(MIN_GROUPS + 1)]
    routed_viewers = [member(g) for g in routed]
    router = Router()
    ticks = [
        [position("a", 1), position("b", 2)],
        [position("a", 5), position("b", 6)],  # battery changed: meta again
        [position("a", 5, lon=CITY[0] + 0.01), position("b", 6, lon=CITY[0] + 0.02)],  # moved only: no meta
        [position("a", 5, status="busy"), position("b", 6)],  # a's status changed
        [position("a", 5, status="busy", lon=0.0, lat=0.0)],  # a leaves the box (no frame)
        [position("a", 5, status="busy"), position("c", 3)],  # a is back unchanged; c is new
        [Change("positions", "b", {"id": "b", "deleted": True}, lon=CITY[0], lat=CITY[1])],
        [position("a", 5, status="available"), position("c", 3)],
    ]
    for seq, changes in enumerate(ticks, 1):
        if seq in (6, 8):
            for g in [plain, *routed]:
                # A viewer joins (6: with a snapshot, known metas are not sent again; 8: resuming, so
                # the group forgets and sends every meta again on next sight).
                member(g, resuming=seq == 8)
        plain._last_flush = 0.0
        plain.offer(decode_batch("ep", seq, encode_batch(changes, "w")))
        router.deliver(decode_batch("ep", seq, encode_batch(changes, "w")), routed, 1)
        router.route_pending()
        want = [json.loads(f.text) for f in plain_viewer._queue]
        plain_viewer._queue.clear()
        for v in routed_viewers:
            got = [json.loads(f.text) for f in v._queue]
            v._queue.clear()
            assert len(got) == len(want) <= 1, seq
            for w, g in zip(want, got, strict=True):
                assert sorted(g["meta"]) == sorted(w["meta"]), seq
                assert sorted(g["positions"]) == sorted(w["positions"]), seq
                assert g["seq"] == w["seq"] == seq
        if seq == 3:
            assert want[0]["meta"] == []
        if seq == 6:
            assert sorted(m[0] for m in want[0]["meta"]) == ["c"]  # a is back unchanged; c is new
        if seq == 8:
            assert sorted(m[0] for m in want[0]["meta"]) == ["a", "c"]
    for g in [plain, *routed]:
        g.close()


async def test_lane_frames_equal_the_per_group_path_over_random_ticks_and_a_meta_numbering_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Box groups routed by a lane (meta ids compared per responder column, :mod:`server.stream.metatable`)
    send, tick after tick, the same positions and metas as each group's twin taking the batches itself:
    responders move in and out of boxes, metas change, viewers join or resume (then the group forgets), deletes, and the
    meta numbering starts over (every row rebuilt from the groups' records)."""
    import random

    from server.stream import metatable
    from server.stream.router import MIN_GROUPS, Router

    monkeypatch.setattr(metatable, "MAX_IDS", 12)  # starts over every few ticks
    rng = random.Random(5)
    boxes = [box_near_city(rng, (0.01, 0.01), (0.006, 0.005)) for _ in range(MIN_GROUPS + 3)]
    plain, routed, plain_viewers, routed_viewers = twins(boxes)
    router = Router()
    rids = [f"r{i:02d}" for i in range(30)]
    status = dict.fromkeys(rids, "available")
    metas_sent = 0
    for seq in range(1, 41):
        changes = []
        moving = rng.sample(rids, 12)
        for rid in moving:
            if rng.random() < 0.2:
                status[rid] = rng.choice(["available", "busy", "off_duty"])
            lon, lat = CITY[0] + rng.uniform(-0.015, 0.015), CITY[1] + rng.uniform(-0.015, 0.015)
            c = position(rid, seq, status=status[rid], lon=lon, lat=lat)
            changes.append(Change("positions", rid, c.data, accepted_at=c.accepted_at, lon=lon, lat=lat, team_id=TEAM))
        if seq % 3 == 0:
            # (one that did not move in this batch: a lane coalesces before it filters, a group after)
            gone = next(r for r in rids if r not in moving)
            changes.append(Change("positions", gone, {"id": gone, "deleted": True}, lon=CITY[0], lat=CITY[1]))
        if seq % 7 == 0:
            i = seq % len(boxes)
            member(plain[i], True), member(routed[i], True)  # a viewer resumes: that group forgets what it sent
        for g in plain:
            g._last_flush = 0.0
            g.offer(decode_batch("ep", seq, encode_batch(changes, "w")))
        router.deliver(decode_batch("ep", seq, encode_batch(changes, "w")), routed, 1)
        router.route_pending()
        for pv, rv in zip(plain_viewers, routed_viewers, strict=True):
            want = [json.loads(f.text) for f in pv._queue]
            got = [json.loads(f.text) for f in rv._queue]
            pv._queue.clear()
            rv._queue.clear()
            assert len(got) == len(want) <= 1, seq
            for w, g in zip(want, got, strict=True):
                assert sorted(g["meta"]) == sorted(w["meta"]), seq
                assert sorted(g["positions"]) == sorted(w["positions"]), seq
                metas_sent += len(w["meta"])
    assert metas_sent > 20
    for g in plain + routed:
        g.close()


def test_a_box_frames_positions_are_slices_of_the_ticks_joined_positions() -> None:
    """``TickItems.position_slices``: for any ascending subset of a tick's items, the slices join to
    exactly the comma-separated compact positions of those items."""
    import random

    import numpy as np

    from server.stream.groups import TickItems

    rng = random.Random(3)
    changes = [position(f"r{i:03d}", i, lon=CITY[0] + rng.uniform(-0.05, 0.05)) for i in range(300)]
    tick = TickItems(decode_batch("ep", 1, encode_batch(changes, "w")).items)
    for size in (0, 1, 2, 17, 150, 300):
        at = np.array(sorted(rng.sample(range(300), size)), np.intp)
        want = b",".join(tick.compact[c] for c in at.tolist())  # type: ignore[misc]
        assert b"".join(tick.position_slices(at)) == want


async def test_lane_frames_of_many_points_hold_exactly_each_boxs_positions() -> None:
    """A lane tick of hundreds of points (ordered in strips, each box's positions sent as slices):
    every box gets exactly the positions inside it, as when each group takes the batch itself."""
    import random

    from server.stream.router import MIN_GROUPS, Router

    rng = random.Random(11)
    boxes = [box_near_city(rng, (0.05, 0.04), (0.05, 0.04)) for _ in range(MIN_GROUPS + 8)]
    plain, routed, plain_viewers, routed_viewers = twins(boxes)
    router = Router()
    for seq in (1, 2):
        changes = []
        for i in range(600):
            lon, lat = CITY[0] + rng.uniform(-0.08, 0.08), CITY[1] + rng.uniform(-0.06, 0.06)
            c = position(f"r{i:03d}", seq, lon=lon, lat=lat)
            changes.append(
                Change("positions", c.key, c.data, accepted_at=c.accepted_at, lon=lon, lat=lat, team_id=TEAM)
            )
        for g in plain:
            g._last_flush = 0.0
            g.offer(decode_batch("ep", seq, encode_batch(changes, "w")))
        router.deliver(decode_batch("ep", seq, encode_batch(changes, "w")), routed, 1)
        router.route_pending()
        for box, pv, rv in zip(boxes, plain_viewers, routed_viewers, strict=True):
            (want,) = [json.loads(f.text) for f in pv._queue]
            (got,) = [json.loads(f.text) for f in rv._queue]
            pv._queue.clear()
            rv._queue.clear()
            assert sorted(got["positions"]) == sorted(want["positions"])
            assert sorted(got["meta"]) == sorted(want["meta"])
            x0, y0, x1, y1 = box.bbox  # type: ignore[misc]
            assert all(x0 <= p[1] <= x1 and y0 <= p[2] <= y1 for p in got["positions"])
            assert 100 < len(got["positions"]) < 600
    for g in plain + routed:
        g.close()


def test_meta_table_rows_number_unknown_responders_and_metas() -> None:
    """A group's row built from its record of sent metas: responders and metas never seen in a tick
    (a seeded snapshot's) get numbers too, and the row says which meta was sent for each."""
    from server.stream.metatable import MetaTable

    table = MetaTable()
    _, mids = table.columns(["a", "b"], [b'["a",1]', None])
    assert mids.tolist()[1] == 0
    row = table.row({"a": b'["a",1]', "c": b'["c",2]'})
    assert row[table.index["a"]] == table.ids[b'["a",1]'] == mids[0]
    assert row[table.index["c"]] == table.ids[b'["c",2]'] != mids[0]
    assert row[table.index["b"]] == -1
    assert table.row({}).tolist().count(-1) == len(table.row({}))


async def test_single_member_lane_frames_keep_holding_backpressure_and_the_frame_count() -> None:
    """A lane hands a one-member group's frame straight to its viewer (``Group.send_positions`` with
    the turn's time): a writable socket gets the same bytes as a group of two members, a held member
    holds it, a viewer whose socket is not writable queues it and is closed as too slow past its
    bound (and counted), and the frames are counted once per turn."""
    from server.stream.router import MIN_GROUPS, Router
    from server.stream.viewer import CLOSE_TOO_SLOW

    counted: list[int] = []
    dropped: list[Viewer] = []

    def group() -> Group:
        area = Area(bbox=(-92.0, 41.0, -91.0, 42.5))
        key = group_key(frozenset({"positions"}), area, 4, Scope("all"), "compact")
        return Group(key, frozenset({"positions"}), area, 4, Scope("all"), lambda: "ep", counted.append, "compact")

    def viewer(g: Group, holding: bool = False, writable: bool | None = None) -> tuple[Viewer, list[bytes], ViewerSub]:
        v = Viewer(Principal("user", uuid.uuid4(), "coord", "coordinator", None, None), Scope("all"), 2, dropped.append)
        written: list[bytes] = []
        if writable is not None:
            v.writer = lambda f: bool(writable and not written.append(f.ws_frame()))
        sub = ViewerSub(f"s{id(v)}", v, g, holding=holding)
        g.add(sub)
        return v, written, sub

    groups = [group() for _ in range(MIN_GROUPS + 4)]
    fast, fast_written, _ = viewer(groups[0], writable=True)
    stuck, _, _ = viewer(groups[1], writable=False)
    holder, _, held = viewer(groups[2], holding=True)
    pair = [viewer(groups[3], writable=True) for _ in range(2)]
    queued = [viewer(g)[0] for g in groups[4:]]
    router = Router()
    for seq in range(1, 4):
        changes = [position(f"r{i}", seq + i) for i in range(5)]
        router.deliver(decode_batch("ep", seq, encode_batch(changes, "w")), groups, 1)
        router.route_pending()
        assert len(fast_written) == seq and not fast._queue
        assert fast_written[-1] == pair[0][1][-1] == pair[1][1][-1]
        assert len(held.held) == min(seq, 2)  # (held frames count against the bound too)
        assert [json.loads(f.text)["seq"] for f in queued[0]._queue] == ([] if seq > 2 else list(range(1, seq + 1)))
    assert stuck.closed is not None and stuck.closed.code == CLOSE_TOO_SLOW
    assert dropped == [stuck, holder, *queued]  # (the rest had no writer: queued past their bound of 2)
    assert sum(counted) == 3 * (len(groups) + 1)  # one per member per frame
    last = fast_written[-1]
    assert len(json.loads(last[last.index(b"{") :])["positions"]) == 5
    for g in groups:
        g.close()


@pytest.mark.parametrize("fences", [False, True], ids=["positions", "positions+fence_events"])
async def test_items_of_a_topic_no_box_wants_leave_the_slots_frames_planned(fences: bool) -> None:
    """An alert without a location (it would go to every area that wants alerts) and a fence event at
    a point (no compact form) in the tick do not keep a slot of positions-only boxes from planning its
    frames; boxes that want fence events take the per-group path; either way the frames are those of
    the per-group path."""
    from server.stream.router import MIN_GROUPS, Router

    topics = frozenset({"positions", "fence_events"} if fences else {"positions"})

    def positions_group() -> Group:
        area = Area(bbox=(-92.0, 41.0, -91.0, 42.5))
        key = group_key(topics, area, 4, Scope("all"), "compact")
        return Group(key, topics, area, 4, Scope("all"), lambda: "ep", encoding="compact")

    plain, routed = positions_group(), [positions_group() for _ in range(MIN_GROUPS + 1)]
    plain_viewer, routed_viewers = member(plain), [member(g) for g in routed]
    changes = [
        position("a", 1),
        Change("alerts", "al1", {"id": "al1", "text": "x"}),
        Change("fence_events", "fe1", {"id": "fe1", "kind": "enter"}, lon=CITY[0], lat=CITY[1]),
        position("b", 2),
    ]
    router = Router()
    router.deliver(decode_batch("ep", 1, encode_batch(changes, "w")), routed, 1)
    match, works = router._match, []

    def spy(slot: Any, plan: bool = True) -> Any:
        works.append(match(slot, plan))
        return works[-1]

    router._match = spy  # type: ignore[method-assign]
    router.route_pending()
    (work,) = works
    assert len(work.plan.runs) == (0 if fences else len(routed)) and not work.rest
    plain._last_flush = 0.0
    plain.offer(decode_batch("ep", 1, encode_batch(changes, "w")))
    (want,) = [json.loads(f.text) for f in plain_viewer._queue]
    for v in routed_viewers:
        (got,) = [json.loads(f.text) for f in v._queue]
        assert sorted(got["positions"]) == sorted(want["positions"]) and len(got["positions"]) == 2
        assert sorted(got["meta"]) == sorted(want["meta"])
        assert sorted(got["items"], key=str) == sorted(want["items"], key=str)
        assert len(got["items"]) == (1 if fences else 0)
    for g in [plain, *routed]:
        g.close()


async def test_a_viewer_joining_a_box_knows_every_meta_the_group_sent_and_others_get_no_repeat(
    server: ServerProcess, client: httpx.AsyncClient
) -> None:
    """A responder whose meta a box group sent, then outside the box when a second viewer joins: the
    newcomer's snapshot carries that meta (without a position), so when the responder comes back
    both viewers get its position by handle and neither gets its meta again."""
    coord = await login(client, "coord")
    device = await new_device(client, {"Authorization": f"Bearer {coord}"})
    rid = device["responder_id"]
    box = [-91.70, 41.95, -91.64, 41.99]

    async def move(lon: float) -> None:
        r = await client.post("/v1/positions", json=[fix(lon=lon, lat=41.97)], headers=device_headers(device))
        assert r.status_code == 200, r.text

    def at(v: WsViewer, lon: float) -> Any:
        return lambda m: (
            m.get("type") == "delta" and any(v.handles.get(p[0]) == rid and p[1] == lon for p in m.get("positions", []))
        )

    def meta_of(m: dict[str, Any]) -> list[Any]:
        return [x for x in m.get("meta", []) if x[0] == rid]

    await move(-91.67)
    a = await open_viewer(server.ws_url, coord)
    b = await open_viewer(server.ws_url, coord)
    try:
        snap_a = await a.subscribe(topics=["positions"], bbox=box, encoding="compact")
        assert meta_of(snap_a)  # inside: meta and position
        await move(-91.60)  # out of the box: one last update
        await a.next(at(a, -91.60))
        await asyncio.sleep(SNAPSHOT_SHARE_S + 0.2)  # b's snapshot is a new read, not a's shared one
        snap_b = await b.subscribe(topics=["positions"], bbox=box, encoding="compact")
        assert snap_b["bbox"] == snap_a["bbox"]  # the same group
        assert meta_of(snap_b) and all(b.handles.get(p[0]) != rid for p in snap_b["positions"])
        await move(-91.665)  # back in
        back_a = await a.next(at(a, -91.665))
        back_b = await b.next(at(b, -91.665))
        assert not meta_of(back_a) and not meta_of(back_b)
    finally:
        await a.ws.close()
        await b.ws.close()
