from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from shapely.geometry import box

from geo.fences import Fence, FenceEngine, Fix, to_tile38
from geo.geodesy import point_buffer

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ZONE = box(14.0, 46.0, 14.1, 46.1)
ALL = frozenset({"enter", "exit", "inside", "outside", "dwell"})


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def fix(s, lon, lat, rid="r1", **kw):
    kw.setdefault("received_at", at(s))
    return Fix(responder_id=rid, fix_time=at(s), lon=lon, lat=lat, seq=int(s * 1000), **kw)


def engine_with(fence: Fence, window_s: float = 10.0) -> FenceEngine:
    eng = FenceEngine(reorder_window_s=window_s)
    assert eng.upsert_fence(fence, T0) == []
    return eng


def feed(eng: FenceEngine, fixes, now_s=1000.0):
    """Deliver fixes on time (as of the newest one), then let the window pass."""
    newest = max(f.fix_time for f in fixes)
    return eng.add_fixes(fixes, newest) + eng.advance(at(now_s))


def detects(events):
    return [(e.detect, e.fix_time) for e in events]


IN, OUT = (14.05, 46.05), (13.95, 46.05)


def test_enter_then_exit_with_inside_and_outside_events():
    eng = engine_with(Fence(id="z", geometry=ZONE, detect=ALL - {"dwell"}))
    events = feed(eng, [fix(0, *OUT), fix(10, *IN), fix(20, *IN), fix(30, *OUT), fix(40, *OUT)])
    assert detects(events) == [
        ("enter", at(10)),
        ("inside", at(10)),
        ("inside", at(20)),
        ("exit", at(30)),
        ("outside", at(30)),
        ("outside", at(40)),
    ]
    groups = {e.group for e in events}
    assert len(groups) == 1  # one visit
    assert all(e.reason == "fix" and not e.late for e in events)
    # time is processing time: fixes 0..30 were released on arrival of the 40 s fix, the rest later
    assert [e.time for e in events] == [at(40)] * 5 + [at(1000)]


def test_new_visit_gets_a_new_group():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    events = feed(eng, [fix(0, *IN), fix(10, *OUT), fix(20, *IN)])
    assert [e.detect for e in events] == ["enter", "exit", "enter"]
    assert events[0].group == events[1].group != events[2].group


def test_events_only_for_requested_detects():
    eng = engine_with(Fence(id="z", geometry=ZONE, detect=frozenset({"exit"})))
    events = feed(eng, [fix(0, *IN), fix(10, *OUT)])
    assert [e.detect for e in events] == ["exit"]


def test_fixes_wait_for_the_reorder_window_and_come_out_in_fix_time_order():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    assert eng.add_fixes([fix(20, *OUT), fix(10, *IN)], at(19)) == []  # both within the window
    assert eng.pending_fixes() == 2
    events = eng.advance(at(30))
    assert detects(events) == [("enter", at(10)), ("exit", at(20))]
    assert eng.pending_fixes() == 0


def test_late_fix_produces_no_transition():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    assert detects(eng.add_fixes([fix(0, *OUT), fix(20, *OUT)], at(100))) == []
    late = fix(10, *IN)
    assert eng.add_fixes([late], at(101)) == []
    assert eng.drain_late() == [late]
    assert eng.stats.late_fixes == 1
    assert eng.inside("z") == []
    assert eng.positions()[0]["fix_time"] == at(20)


def test_fix_arriving_after_its_window_is_evaluated_and_flagged_late():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    eng.add_fixes([fix(0, *OUT)], at(15))
    # newer than anything processed, but received 50 s after its fix time (phone was offline)
    events = eng.add_fixes([fix(10, *IN, received_at=at(60))], at(60))
    assert [(e.detect, e.late) for e in events] == [("enter", True)]


def test_dwell_enters_only_after_staying():
    eng = engine_with(Fence(id="z", geometry=ZONE, detect=frozenset({"enter", "exit", "dwell"}), dwell_s=60))
    events = feed(eng, [fix(0, *IN), fix(30, *IN), fix(59, *IN), fix(60, *IN), fix(90, *IN), fix(100, *OUT)])
    assert detects(events) == [("enter", at(60)), ("dwell", at(60)), ("exit", at(100))]
    assert events[0].since == at(0)


def test_dwell_cancelled_quietly_when_leaving_early():
    eng = engine_with(Fence(id="z", geometry=ZONE, detect=ALL, dwell_s=60))
    events = feed(eng, [fix(0, *IN), fix(30, *OUT), fix(40, *IN), fix(80, *IN), fix(100, *IN)])
    assert detects(events)[:3] == [("enter", at(100)), ("dwell", at(100)), ("inside", at(100))]
    assert events[0].since == at(40)


def test_hysteresis_exit_only_beyond_buffer():
    eng = engine_with(Fence(id="z", geometry=ZONE, hysteresis_m=200))
    just_out = (14.1 + 100 / 77_000, 46.05)  # ~100 m east of the edge
    far_out = (14.1 + 400 / 77_000, 46.05)  # ~400 m
    events = feed(eng, [fix(0, *IN), fix(10, *just_out), fix(20, *IN), fix(30, *far_out)])
    assert detects(events) == [("enter", at(0)), ("exit", at(30))]


def test_hysteresis_does_not_widen_the_entry():
    eng = engine_with(Fence(id="z", geometry=ZONE, hysteresis_m=200))
    assert feed(eng, [fix(0, 14.1 + 100 / 77_000, 46.05)]) == []


def test_fix_whose_accuracy_straddles_the_boundary_is_uncertain_and_flips_nothing():
    eng = engine_with(Fence(id="z", geometry=ZONE, detect=frozenset({"enter", "exit", "inside"})))
    near_edge_inside = (14.1 - 30 / 77_000, 46.05)  # ~30 m inside the east edge
    near_edge_outside = (14.1 + 30 / 77_000, 46.05)
    events = feed(
        eng,
        [
            fix(0, *near_edge_inside, accuracy_m=100),  # would enter, but uncertain
            fix(10, *IN, accuracy_m=10),  # enters
            fix(20, *near_edge_outside, accuracy_m=100),  # would exit, but uncertain
            fix(30, *near_edge_outside, accuracy_m=5),  # exits
        ],
    )
    assert [(e.detect, e.fix_time, e.uncertain) for e in events] == [
        ("enter", at(10), False),
        ("inside", at(10), False),
        ("inside", at(20), True),
        ("exit", at(30), False),
    ]


def test_creating_a_fence_enters_responders_already_inside():
    eng = FenceEngine()
    eng.add_fixes([fix(0, *IN, rid="a"), fix(0, *OUT, rid="b")], at(100))
    events = eng.upsert_fence(Fence(id="z", geometry=ZONE), at(200))
    assert [(e.detect, e.responder_id, e.reason, e.fix_time, e.time) for e in events] == [
        ("enter", "a", "fence_created", at(0), at(200))
    ]


def test_moving_a_fence_emits_enter_and_exit():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    eng.add_fixes([fix(0, *IN, rid="a"), fix(0, *OUT, rid="b")], at(100))
    assert eng.inside("z") == ["a"]
    moved = Fence(id="z", geometry=box(13.9, 46.0, 14.0, 46.1), version=2)
    events = eng.upsert_fence(moved, at(200))
    assert sorted((e.detect, e.responder_id, e.reason) for e in events) == [
        ("enter", "b", "fence_moved"),
        ("exit", "a", "fence_moved"),
    ]
    assert eng.inside("z") == ["b"]


def test_growing_and_shrinking_a_fence_reevaluates_everyone():
    eng = engine_with(Fence(id="z", geometry=point_buffer(14.05, 46.05, 500)))
    ids = [f"r{i}" for i in range(100)]
    fixes = [fix(0, 14.05 + i * 0.0002, 46.05, rid=rid) for i, rid in enumerate(ids)]  # 0..1.5 km east
    eng.add_fixes(fixes, at(100))
    before = set(eng.inside("z"))
    grown = eng.upsert_fence(Fence(id="z", geometry=point_buffer(14.05, 46.05, 1000)), at(200))
    after = set(eng.inside("z"))
    assert {e.responder_id for e in grown if e.detect == "enter"} == after - before
    assert len(after) > len(before) > 0
    shrunk = eng.upsert_fence(Fence(id="z", geometry=point_buffer(14.05, 46.05, 200)), at(300))
    assert {e.responder_id for e in shrunk if e.detect == "exit"} == after - set(eng.inside("z"))


def test_deleting_a_fence_exits_everyone_inside():
    eng = engine_with(Fence(id="z", geometry=ZONE))
    eng.add_fixes([fix(0, *IN, rid="a"), fix(0, *IN, rid="b"), fix(0, *OUT, rid="c")], at(100))
    events = eng.remove_fence("z", at(200))
    assert [(e.detect, e.responder_id, e.reason) for e in events] == [
        ("exit", "a", "fence_deleted"),
        ("exit", "b", "fence_deleted"),
    ]
    assert eng.fence("z") is None and eng.fences_of("a") == []
    assert feed(eng, [fix(10, *OUT, rid="a")]) == []


def test_expired_fence_exits_everyone_inside():
    eng = engine_with(Fence(id="z", kind="hazard", geometry=ZONE, valid_until=at(150)))
    eng.add_fixes([fix(0, *IN, rid="a")], at(100))
    assert eng.expire(at(149)) == []
    events = eng.advance(at(150))
    assert [(e.detect, e.responder_id, e.reason, e.fence_kind) for e in events] == [
        ("exit", "a", "fence_expired", "hazard")
    ]
    assert eng.fence("z") is None


def test_applies_to_filters_by_responder_and_team():
    eng = engine_with(Fence(id="z", geometry=ZONE, applies_to=frozenset({"a", "team-1"})))
    events = feed(
        eng,
        [fix(0, *IN, rid="a"), fix(0, *IN, rid="b", team_id="team-1"), fix(0, *IN, rid="c", team_id="team-2")],
    )
    assert sorted(e.responder_id for e in events) == ["a", "b"]
    # narrowing applies_to exits those no longer covered
    events = eng.upsert_fence(Fence(id="z", geometry=ZONE, applies_to=frozenset({"a"})), at(2000))
    assert [(e.detect, e.responder_id) for e in events] == [("exit", "b")]


def test_unknown_detect_name_is_rejected():
    with pytest.raises(ValueError, match="unknown detect"):
        Fence(id="z", geometry=ZONE, detect=frozenset({"enter", "roam"}))


def test_snapshot_and_restore_resume_after_failover():
    fence = Fence(id="z", geometry=ZONE)
    eng = engine_with(fence)
    eng.add_fixes([fix(0, *IN, rid="a"), fix(0, *OUT, rid="b")], at(100))
    rows, positions = eng.snapshot(), eng.positions()
    assert [(r["responder_id"], r["state"]) for r in rows] == [("a", "inside")]

    other = FenceEngine()
    other.upsert_fence(fence, at(0))  # fences are loaded before the state
    other.load_positions(positions)
    other.restore(rows)
    events = other.add_fixes([fix(10, *OUT, rid="a"), fix(10, *IN, rid="b")], at(200))
    assert sorted((e.detect, e.responder_id) for e in events) == [("enter", "b"), ("exit", "a")]
    exit_event = next(e for e in events if e.detect == "exit")
    assert exit_event.group == rows[0]["group"]
    assert other.add_fixes([fix(5, *IN, rid="a")], at(300)) == []  # older than the loaded position
    assert other.stats.late_fixes == 1


def test_pending_min_seq_marks_a_safe_checkpoint():
    eng = FenceEngine(reorder_window_s=10)
    eng.add_fixes([fix(5, *IN), fix(1, *IN, rid="b")], at(6))
    assert eng.pending_min_seq() == 1000
    eng.advance(at(100))
    assert eng.pending_min_seq() is None


def test_to_tile38_shape():
    eng = engine_with(Fence(id="flood-1", kind="hazard", name="Flood Warning", geometry=ZONE, meta={"sev": "x"}))
    (event,) = feed(eng, [fix(0, *IN)])
    msg = to_tile38(event, hook="wh-1")
    assert msg["command"] == "set" and msg["detect"] == "enter" and msg["hook"] == "wh-1"
    assert msg["key"] == "responders" and msg["id"] == "r1"
    assert msg["object"] == {"type": "Point", "coordinates": [IN[0], IN[1]]}
    assert msg["meta"] == {"sev": "x"} and msg["hazard"] == "flood-1" and msg["late"] is False
    assert msg["fix_time"] == "2024-05-01T12:00:00Z" and msg["time"].endswith("Z")
    assert msg["fence"]["name"] == "Flood Warning"
    assert msgspec.json.decode(msgspec.json.encode(msg)) == msg


def test_prefilter_examines_far_fewer_pairs_than_brute_force():
    eng = FenceEngine(reorder_window_s=0)
    for i in range(50):
        eng.upsert_fence(Fence(id=f"h{i}", geometry=point_buffer(10 + i * 0.1, 45, 800)), T0)
    fixes = [fix(1, 10 + (i % 500) * 0.01, 45.0 + (i // 500) * 0.001, rid=f"r{i}") for i in range(1000)]
    eng.add_fixes(fixes, at(1))
    s = eng.stats
    assert s.brute_force_pairs == 50_000
    assert 0 < s.candidate_pairs < s.brute_force_pairs / 20
    assert s.exact_tests <= s.candidate_pairs


def test_changed_pairs_replay_to_the_same_state_as_a_snapshot():
    """An incremental persister that writes only :meth:`drain_changed` pairs ends with exactly the
    engine's snapshot, through dwell, hysteresis, exits, a moved fence and a deleted one."""
    eng = FenceEngine(reorder_window_s=0)
    eng.upsert_fence(Fence(id="a", geometry=ZONE, detect=ALL, dwell_s=15, hysteresis_m=200), T0)
    eng.upsert_fence(Fence(id="b", geometry=box(14.04, 46.04, 14.2, 46.2), detect=frozenset({"enter", "exit"})), T0)
    stored: dict[tuple[str, str], tuple] = {}

    def persist() -> None:
        for rid, fid in eng.drain_changed():
            v = eng.visit_of(rid, fid)
            if v is None:
                stored.pop((rid, fid), None)
            else:
                stored[(rid, fid)] = (v.state, v.since, v.group, v.fence_version)

    def expected() -> dict[tuple[str, str], tuple]:
        return {(r["responder_id"], r["fence_id"]): (r["state"], r["since"], r["group"], r["fence_version"])
                for r in eng.snapshot()}  # fmt: skip

    track = [OUT, IN, IN, IN, (14.1005, 46.05), (14.15, 46.05), OUT, IN]
    for i, (lon, lat) in enumerate(track):
        for rid in ("r1", "r2"):
            eng.add_fixes([fix(10 * i + (rid == "r2"), lon, lat, rid=rid)], at(10 * i + 5))
        persist()
        assert stored == expected()
    assert any(k[1] == "a" for k in stored)
    eng.upsert_fence(Fence(id="a", geometry=box(13.0, 45.0, 13.1, 45.1), detect=ALL, version=2), at(100))
    persist()
    assert stored == expected()
    eng.remove_fence("b", at(101))
    persist()
    assert stored == expected() and not any(k[1] == "b" for k in stored)
    assert eng.drain_changed() == set()


def test_fences_without_inside_detect_give_the_same_transitions_as_with_it():
    """The evaluation shortcut for "still inside, nothing to emit" (fences without ``inside``)
    changes nothing: same enter/exit/dwell events and the same visits as a fence asking for
    ``inside`` too, through accuracy, hysteresis, dwell and team-scoped fences."""
    import random

    shapes = [
        dict(geometry=ZONE),
        dict(geometry=box(14.03, 46.03, 14.08, 46.12), hysteresis_m=150),
        dict(geometry=point_buffer(14.06, 46.06, 2500), dwell_s=20),
        dict(geometry=box(14.0, 46.0, 14.05, 46.05), applies_to=frozenset({"t1"})),
    ]
    base = frozenset({"enter", "exit", "dwell"})

    def run(detect: frozenset[str]) -> tuple[list, list]:
        eng = FenceEngine(reorder_window_s=5)
        eng.upsert_fences([Fence(id=f"f{i}", detect=detect, **kw) for i, kw in enumerate(shapes)], T0)
        walk = random.Random(11)
        pos = {f"r{k}": [14.0 + walk.random() * 0.12, 46.0 + walk.random() * 0.12] for k in range(30)}
        events = []
        for step in range(60):
            fixes = []
            for rid, p in pos.items():
                p[0] += walk.uniform(-0.004, 0.004)
                p[1] += walk.uniform(-0.004, 0.004)
                fixes.append(
                    fix(step * 2 + walk.random(), p[0], p[1], rid=rid, accuracy_m=walk.choice([None, 5.0, 80.0]),
                        team_id="t1" if rid < "r15" else "t2")
                )  # fmt: skip
            events += eng.add_fixes(fixes, at(step * 2 + 1))
        events += eng.advance(at(1000))
        kept = [(e.detect, e.fence_id, e.responder_id, e.fix_time, e.group) for e in events if e.detect in base]
        return kept, eng.snapshot()

    plain, with_inside = run(base), run(base | {"inside"})
    assert plain[0] == with_inside[0] and len(plain[0]) > 20
    assert plain[1] == with_inside[1] and any(r["state"] == "inside" for r in plain[1])


def test_pending_min_seq_is_the_smallest_seq_still_buffered_as_fixes_come_and_go():
    """Fixes leave the buffer in fix-time order, not seq order, and several share a seq (one ingest
    batch): the answer is always the smallest seq of what is still buffered."""
    import random

    rng = random.Random(7)
    eng = FenceEngine(reorder_window_s=10)
    seq, now = 0, 0.0
    for _ in range(400):
        now += rng.uniform(0.1, 3.0)
        if rng.random() < 0.7:
            seq += rng.randint(0, 2)  # a batch: consecutive fixes may share a seq
            f = fix(0, *IN, rid=f"r{rng.randint(0, 5000)}")
            eng.add_fixes([msgspec.structs.replace(f, fix_time=at(now - rng.uniform(0, 15)), seq=seq)], at(now))
        eng.advance(at(now), limit=rng.choice([None, 1, 3]))
        assert eng.pending_min_seq() == min((item[2] for item in eng._heap), default=None)
    eng.advance(at(now + 100))
    assert eng.pending_fixes() == 0 and eng.pending_min_seq() is None
