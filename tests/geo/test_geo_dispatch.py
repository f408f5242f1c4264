from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import box

from geo.dispatch import Candidate, excluded, rank

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
INCIDENT = (14.50, 46.05)
FLOOD = ("hz-flood", box(14.515, 46.04, 14.53, 46.06), "Flood Warning")


def unit(id_, lon, lat, *, age_s=30, skills=(), status="available", kind="responder"):
    return Candidate(
        id=id_,
        kind=kind,
        lon=lon,
        lat=lat,
        fix_time=NOW - timedelta(seconds=age_s),
        status=status,
        team_id="t1",
        skills=frozenset(skills),
    )


def test_nearest_unit_inside_flood_is_excluded_and_second_nearest_wins():
    near_in_flood = unit("u-near", 14.52, 46.05, skills={"swiftwater"})  # ~1.5 km, inside the flood
    second = unit("u-second", 14.47, 46.05, skills={"swiftwater"})  # ~2.3 km, west, clear route
    third = unit("u-third", 14.44, 46.07, skills={"swiftwater"})
    recs = rank(*INCIDENT, [third, near_in_flood, second], required_skills={"swiftwater"}, hazards=[FLOOD], now=NOW)
    assert [r.id for r in recs] == ["u-second", "u-third"]
    best = recs[0]
    assert best.inside_hazard is None and not best.route_crosses_hazard
    assert best.distance_m == pytest.approx(2316, rel=0.02)
    assert best.reasons[0] == "2.3 km, ~3 min"
    assert "has skill: swiftwater" in best.reasons
    assert excluded([near_in_flood], hazards=[FLOOD], now=NOW) == {"u-near": "inside hazard Flood Warning (hz-flood)"}


def test_flagged_units_can_be_included_with_a_reason():
    recs = rank(*INCIDENT, [unit("u-near", 14.52, 46.05)], hazards=[FLOOD], now=NOW, include_flagged=True)
    assert recs[0].inside_hazard == "hz-flood"
    assert "inside hazard Flood Warning (flagged)" in recs[0].reasons


def test_route_crossing_a_hazard_is_penalised():
    across = unit("u-across", 14.54, 46.05)  # east of the flood: straight route crosses it
    clear = unit("u-clear", 14.455, 46.05)  # slightly farther, west
    recs = rank(*INCIDENT, [across, clear], hazards=[FLOOD], now=NOW)
    assert [r.id for r in recs] == ["u-clear", "u-across"]
    assert recs[1].route_crosses_hazard and recs[1].crossed_hazards == ["hz-flood"]
    assert "route crosses hazard Flood Warning (penalty)" in recs[1].reasons
    assert recs[1].distance_m < recs[0].distance_m


def test_stale_and_unavailable_units_are_excluded():
    fresh = unit("fresh", 14.6, 46.05)
    stale = unit("stale", 14.501, 46.05, age_s=301)
    busy = unit("busy", 14.501, 46.05, status="busy")
    recs = rank(*INCIDENT, [stale, busy, fresh], now=NOW)
    assert [r.id for r in recs] == ["fresh"]
    assert excluded([stale, busy], now=NOW) == {"stale": "position is stale", "busy": "status busy"}


def test_skill_match_outranks_a_little_distance():
    skilled = unit("skilled", 14.53, 46.05, skills={"hazmat", "medic"})
    unskilled = unit("unskilled", 14.51, 46.05)
    recs = rank(*INCIDENT, [unskilled, skilled], required_skills={"hazmat", "medic"}, now=NOW)
    assert [r.id for r in recs] == ["skilled", "unskilled"]
    assert recs[0].skill_match == 1.0 and recs[1].skill_match == 0.0
    assert "missing skill: hazmat" in recs[1].reasons


def test_partial_skill_match_fraction_and_resources_without_fix_time():
    truck = Candidate(id="truck", kind="resource", lon=14.49, lat=46.05, skills=frozenset({"pump"}))
    recs = rank(*INCIDENT, [truck], required_skills={"pump", "ladder"}, now=NOW)
    assert recs[0].skill_match == 0.5 and not recs[0].stale


def test_ties_break_deterministically_by_distance_then_id():
    a, b = unit("b", 14.51, 46.05), unit("a", 14.49, 46.05)
    first = rank(*INCIDENT, [a, b], now=NOW)
    second = rank(*INCIDENT, [b, a], now=NOW)
    assert [r.id for r in first] == [r.id for r in second]
    assert rank(*INCIDENT, [unit(f"u{i}", 14.5 + i * 0.001, 46.05) for i in range(30)], now=NOW, limit=5)[-1].id == "u4"


def test_indexed_hazard_checks_match_testing_every_route_against_every_hazard():
    """rank() queries one spatial index with all points and routes; the answer is the pairwise one."""
    import random

    import shapely

    from geo.geodesy import line_crosses, point_buffer

    rng = random.Random(7)
    for trial in range(20):
        hazards = [
            (
                f"hz-{rng.randrange(1000):03d}-{k}",
                point_buffer(
                    14.5 + rng.uniform(-0.2, 0.2), 46.05 + rng.uniform(-0.15, 0.15), rng.uniform(300, 6000), segments=16
                ),
                f"H{k}",
            )
            for k in range(rng.randint(0, 25))
        ]
        if trial % 4 == 0:
            hazards.append(("hz-around", point_buffer(*INCIDENT, 800, segments=16), "Around"))
        units = [unit(f"u{i}", 14.5 + rng.uniform(-0.25, 0.25), 46.05 + rng.uniform(-0.2, 0.2)) for i in range(60)]
        got = rank(*INCIDENT, units, hazards=hazards, now=NOW, limit=100, include_flagged=True)
        by_id = {c.id: c for c in units}
        around = [h for h in hazards if shapely.contains_xy(h[1], *INCIDENT)]
        for r in got:
            c = by_id[r.id]
            inside = [h[0] for h in sorted(hazards) if shapely.contains_xy(h[1], c.lon, c.lat)]
            assert r.inside_hazard == (inside[0] if inside else None)
            want = [
                h[0]
                for h in hazards
                if h not in around and h[0] != r.inside_hazard and line_crosses(h[1], c.lon, c.lat, *INCIDENT)
            ]
            assert r.crossed_hazards == want
            assert sum(x.startswith("incident inside hazard") for x in r.reasons) == len(around)
