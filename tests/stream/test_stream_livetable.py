"""The worker's in-memory copy of latest_positions (server/stream/livetable.py): loaded from the real
session database, it gives the same snapshots as the SQL path, and received changes keep it equal to
what PostgreSQL keeps (newer fixes replace, older ones do not, deletes remove, scope applies)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import h3.api.basic_int as h3i

from server.bus import Change
from server.stream import snapshot
from server.stream.area import Area, cells_envelope
from server.stream.livetable import LivePositions
from server.stream.scope import Scope
from server.stream.ticks import decode_batch, encode_batch

CITY_BOX = (-91.72, 41.94, -91.62, 42.02)


def move(rid: str, lon: float, lat: float, fix_time: datetime, team_id: str | None = None, **over: Any) -> Change:
    data: dict[str, Any] = {
        "id": rid,
        "callsign": "T-1",
        "lon": lon,
        "lat": lat,
        "fix_time": fix_time.isoformat().replace("+00:00", "Z"),
        "accuracy_m": 5.0,
        "speed_mps": None,
        "heading_deg": None,
        "battery_pct": None,
        "status": "available",
        "stale": False,
        "h3": "892674cde6fffff",
    }
    data.update(over)
    return Change("positions", rid, data, lon=lon, lat=lat, team_id=team_id)


def received(*changes: Change, seq: int = 1) -> list[Any]:
    return decode_batch("ep", seq, encode_batch(list(changes), "w")).items


async def loaded(db: Any) -> LivePositions:
    live = LivePositions()
    await live.load(db)
    assert live.warm and len(live) > 0
    return live


async def test_live_snapshots_equal_the_sql_snapshots(db: Any) -> None:
    live = await loaded(db)
    team = await db.fetchval("SELECT team_id::text FROM responders WHERE team_id IS NOT NULL LIMIT 1")
    cells = frozenset(h3i.grid_disk(h3i.latlng_to_cell(41.98, -91.67, 7), 1))
    areas = [Area(), Area(bbox=CITY_BOX), Area(cells=cells, envelope=cells_envelope(cells))]
    scopes = [Scope("all"), Scope("team", team, None), Scope("public")]
    topics = frozenset({"positions"})
    for area in areas:
        for scope in scopes:
            for encoding in ("compact", "json"):
                for limit in (20_000, 7):
                    want = await snapshot.load(db, topics, area, scope, limit, encoding)
                    assert not snapshot.needs_sql(topics, scope, live)
                    got = snapshot.load_live(topics, area, scope, limit, encoding, live)
                    assert got[1] == want[1], (area, scope, encoding, limit)
                    if encoding == "json":
                        # The same items; SQL writes floats its own way, so compare decoded.
                        assert json.loads("{" + got[0] + "}") == json.loads("{" + want[0] + "}")
                    else:
                        assert got == want, (area, scope, encoding, limit)


async def test_newer_changes_replace_older_do_not_and_deletes_remove(db: Any) -> None:
    live = await loaded(db)
    rid = await db.fetchval("SELECT responder_id::text FROM latest_positions LIMIT 1")
    stored = live.entry(rid)
    assert stored is not None
    now = datetime.now(UTC) + timedelta(days=1)
    live.apply(received(move(rid, -91.65, 41.99, now, "team-x")))
    entry = live.entry(rid)
    assert entry is not None and (entry["lon"], entry["lat"], entry["team_id"]) == (-91.65, 41.99, "team-x")
    # An older fix (PostgreSQL would not replace latest with it) changes nothing.
    live.apply(received(move(rid, -91.7, 41.95, now - timedelta(seconds=5))))
    assert live.entry(rid) == entry
    # A status change carries the stored fix time: it replaces.
    live.apply(received(move(rid, -91.65, 41.99, now, "team-x", status="busy")))
    entry = live.entry(rid)
    assert entry is not None and b'"busy"' in entry["meta"]
    # The new position is what a snapshot of its box shows.
    rows, _ = live.select(Area(bbox=(-91.651, 41.989, -91.649, 41.991)), Scope("all"), 100)
    assert [live.compact_parts([i])[1][0] for i in rows] == [entry["position"]]
    # A responder outside the team stays out of a team scope; inside, it shows.
    rows, _ = live.select(Area(), Scope("team", "team-x", None), 100)
    assert len(rows) == 1
    # A delete removes it; a new responder appears.
    other = str(uuid.uuid4())
    live.apply(received(Change("positions", rid, {"id": rid, "deleted": True}), move(other, -91.6, 42.0, now)))
    assert live.entry(rid) is None and live.entry(other) is not None
    rows, _ = live.select(Area(), Scope("team", "team-x", None), 100)
    assert rows == []
    # A responder sees itself whatever its team.
    rows, _ = live.select(Area(), Scope("team", None, other), 100)
    assert len(rows) == 1


async def test_changes_received_while_loading_apply_after_the_load(db: Any) -> None:
    live = LivePositions()
    rid = await db.fetchval("SELECT responder_id::text FROM latest_positions LIMIT 1")
    later = datetime.now(UTC) + timedelta(days=2)
    live.apply(received(move(rid, -91.61, 41.96, later)))  # not loaded: ignored
    assert not live.warm and live.entry(rid) is None

    class MidLoad:
        """The connection, with a change arriving while the load's query runs."""

        async def fetch(self, sql: str) -> Any:
            live.apply(received(move(rid, -91.61, 41.96, later)))
            assert not live.warm
            return await db.fetch(sql)

    await live.load(MidLoad())  # type: ignore[arg-type]
    entry = live.entry(rid)
    assert entry is not None and (entry["lon"], entry["lat"]) == (-91.61, 41.96)
    live.invalidate()
    assert not live.warm and snapshot.needs_sql(frozenset({"positions"}), Scope("all"), live)
    assert snapshot.needs_sql(frozenset({"positions", "incidents"}), Scope("all"), None)


async def test_a_refresh_keeps_serving_and_applying_and_an_epoch_change_during_a_load_keeps_it_cold(db: Any) -> None:
    live = await loaded(db)
    rid = await db.fetchval("SELECT responder_id::text FROM latest_positions LIMIT 1")
    later = datetime.now(UTC) + timedelta(days=3)
    seen: list[Any] = []

    class MidRefresh:
        async def fetch(self, sql: str) -> Any:
            live.apply(received(move(rid, -91.62, 41.97, later)))
            seen.append(live.entry(rid))  # applied at once: a snapshot taken now has it
            return await db.fetch(sql)

    await live.load(MidRefresh())  # type: ignore[arg-type]
    assert live.warm
    assert seen[0] is not None and (seen[0]["lon"], seen[0]["lat"]) == (-91.62, 41.97)
    entry = live.entry(rid)
    assert entry is not None and (entry["lon"], entry["lat"]) == (-91.62, 41.97)

    class EpochChange:
        async def fetch(self, sql: str) -> Any:
            live.invalidate()  # ticks may have been lost while this query runs
            return await db.fetch(sql)

    await live.load(EpochChange())  # type: ignore[arg-type]
    assert not live.warm
    await live.load(db)
    assert live.warm
