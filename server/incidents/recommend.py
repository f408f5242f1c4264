"""Dispatch recommendations: gather candidates around an incident by expanding H3 rings, then rank
them with :func:`geo.dispatch.rank` against the active hazards.

Candidates are found through the res-9 ``h3`` column of ``latest_positions``: each search step takes
the ``grid_disk`` of the incident's cell at some resolution and turns every cell into the contiguous
range of its res-9 descendants (a parent's descendants share the leading index digits, so they form
one ``BETWEEN`` range on the b-tree index). Steps grow from ~0.9 km to ~50 km and stop as soon as
enough candidates lie within the radius the disk is sure to cover.

``geo.dispatch.rank`` has no notion of team; a candidate of the incident's team (subtree) gets
``dispatch_team_bonus`` added here, with a reason, and the list is re-sorted.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np
import shapely

from geo.dispatch import ETA_SCALE_S, PROXIMITY_WEIGHT, SKILL_WEIGHT, Candidate, Recommendation, rank
from geo.geodesy import distances_m
from geo.h3index import RES_POSITION, edge_length_m

from ..errors import InvalidInput
from ..users.repository import team_subtree
from .scope import Work
from .structs import SKILLS_FOR_TYPE, RecommendationOut, Recommendations

STEPS: tuple[tuple[int, int], ...] = ((9, 3), (9, 8), (8, 6), (7, 5), (6, 5), (5, 4))
"""(resolution, k) of each search step."""
MAX_LIMIT = 50


def inner_radius_m(res: int, k: int) -> float:
    """A radius every point of which lies inside ``grid_disk(cell, k)`` at ``res`` (with margin for H3 distortion)."""
    return 0.8 * (1.5 * k + 0.866) * edge_length_m(res)


@functools.lru_cache(maxsize=4096)
def descendant_ranges(cell: int, res: int, k: int) -> tuple[list[int], list[int]]:
    """``[lo], [hi]`` of the res-9 descendants of every cell of the disk around ``cell``'s ``res`` parent.

    Cached (per worker): an incident's searches repeat while it is open. Callers must not change the lists."""
    origin = h3.int_to_str(cell)
    if res < RES_POSITION:
        origin = h3.cell_to_parent(origin, res)
    mask = 0
    for digit in range(res + 1, RES_POSITION + 1):
        mask |= 7 << (3 * (15 - digit))
    los, his = [], []
    for c in h3.grid_disk(origin, k):
        lo = int(h3.str_to_int(h3.cell_to_center_child(c, RES_POSITION) if res < RES_POSITION else c))
        los.append(lo)
        his.append(lo | mask)
    return los, his


# The LATERAL (with OFFSET 0 as a fence) keeps the ranges as the outer side even in a generic plan
# (otherwise a cached plan may scan latest_positions and re-run the unnest for every row), and the
# responders join stays a nested loop over the primary key (checked with a forced generic plan).
POSITIONS_SQL = """
SELECT r.id, ST_X(lp.geom) AS lon, ST_Y(lp.geom) AS lat, lp.fix_time, r.status, r.team_id, r.skills,
       r.callsign AS name
FROM unnest($1::bigint[], $2::bigint[]) AS rng(lo, hi)
CROSS JOIN LATERAL (
    SELECT l.responder_id, l.geom, l.fix_time FROM latest_positions l
    WHERE l.h3 >= rng.lo AND l.h3 <= rng.hi AND NOT l.stale AND l.fix_time > now() - make_interval(secs => $3)
    OFFSET 0
) AS lp
JOIN responders r ON r.id = lp.responder_id AND r.status = 'available'
"""

RESOURCES_SQL = """
SELECT rs.id::text AS id, coalesce(ST_X(lp.geom), ST_X(rs.geom)) AS lon, coalesce(ST_Y(lp.geom), ST_Y(rs.geom)) AS lat,
       lp.fix_time, rs.status, rs.team_id, rs.capabilities AS skills, rs.name
FROM resources rs
LEFT JOIN devices d ON d.id = rs.device_id AND d.revoked_at IS NULL
LEFT JOIN latest_positions lp ON lp.responder_id = d.responder_id
WHERE rs.status = 'available' AND coalesce(lp.geom, rs.geom) IS NOT NULL
  AND ST_DWithin(coalesce(lp.geom, rs.geom)::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $3)
"""

HAZARDS_SQL = """
SELECT h.id::text AS id, ST_AsBinary(h.geom) AS wkb, coalesce(nullif(h.title, ''), h.kind) AS name
FROM hazards h
WHERE h.status = 'active' AND (h.valid_until IS NULL OR h.valid_until > now())
  AND h.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326)
"""


def _candidate(row: Any, kind: str) -> Candidate:
    return Candidate(
        id=row["id"],
        kind=kind,  # type: ignore[arg-type]
        lon=float(row["lon"]),
        lat=float(row["lat"]),
        fix_time=row["fix_time"],
        status=row["status"],
        team_id=str(row["team_id"]) if row["team_id"] else None,
        skills=frozenset(row["skills"] or ()),
        name=row["name"] or "",
    )


async def gather(work: Work, lon: float, lat: float, cell: int, need: int) -> tuple[list[Candidate], float]:
    """Responders around the incident, expanding until ``need`` lie within the covered radius."""
    s = work.settings
    max_radius = s.incidents.dispatch_max_radius_m
    found: dict[str, Candidate] = {}
    radius = 0.0
    for res, k in STEPS:
        los, his = descendant_ranges(cell, res, k)
        for row in await work.conn.fetch(POSITIONS_SQL, los, his, float(s.ingest.stale_after_s)):
            rid = str(row["id"])
            if rid not in found:
                found[rid] = Candidate(
                    id=rid,
                    kind="responder",
                    lon=row["lon"],
                    lat=row["lat"],
                    fix_time=row["fix_time"],
                    status=row["status"],
                    team_id=str(row["team_id"]) if row["team_id"] else None,
                    skills=frozenset(row["skills"] or ()),
                    name=row["name"] or "",
                )
        radius = min(inner_radius_m(res, k), max_radius)
        if found:
            pool = list(found.values())
            dist = distances_m(lon, lat, [c.lon for c in pool], [c.lat for c in pool])
            if int(np.count_nonzero(dist <= radius)) >= need or radius >= max_radius:
                return [c for c, d in zip(pool, dist.tolist(), strict=True) if d <= max_radius], radius
        elif radius >= max_radius:
            break
    return list(found.values()), radius


async def recommend(work: Work, incident_id: uuid.UUID, *, limit: int, include_flagged: bool) -> Recommendations:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be 1..{MAX_LIMIT}", errors=[{"field": "limit", "message": f"must be 1..{MAX_LIMIT}"}]
        )
    incident = await work.visible_incident(incident_id)
    lon, lat = float(incident["lon"]), float(incident["lat"])
    s = work.settings
    need = max(3 * limit, limit + 10)
    responders, radius = await gather(work, lon, lat, int(incident["h3"]), need)
    resource_rows = await work.conn.fetch(RESOURCES_SQL, lon, lat, s.incidents.dispatch_max_radius_m)
    candidates = responders + [_candidate(r, "resource") for r in resource_rows]
    hazards = await _hazards(work, lon, lat, candidates)
    required = list(incident["required_skills"] or SKILLS_FOR_TYPE.get(incident["type"], ()))
    now = datetime.now(UTC)
    teams = {str(t) for t in await team_subtree(work.conn, incident["team_id"])} if incident["team_id"] else set()
    bonus = s.incidents.dispatch_team_bonus

    def ranked_prefix(pool: list[Candidate]) -> list[Recommendation]:
        out = rank(
            lon,
            lat,
            pool,
            required_skills=required,
            hazards=hazards,
            now=now,
            stale_after_s=float(s.ingest.stale_after_s),
            speed_mps=s.incidents.dispatch_speed_mps,
            limit=len(pool) or 1,
            include_flagged=include_flagged,
        )
        return team_bonus(out, teams, bonus)

    ranked = bounded(lon, lat, candidates, required, teams, bonus, s.incidents.dispatch_speed_mps, limit, ranked_prefix)
    by_id = {c.id: c for c in candidates}
    items = [_out(r, by_id[r.id]) for r in ranked[:limit]]
    left_out = {} if include_flagged else inside_hazards(candidates, hazards)
    return Recommendations(
        incident_id=incident_id,
        required_skills=required,
        searched_radius_m=round(radius, 1),
        candidates_considered=len(candidates),
        hazards_considered=len(hazards),
        items=items,
        excluded=left_out,
    )


async def _hazards(work: Work, lon: float, lat: float, candidates: list[Candidate]) -> list[tuple[str, Any, str]]:
    lons = [lon, *(c.lon for c in candidates)]
    lats = [lat, *(c.lat for c in candidates)]
    rows = await work.conn.fetch(HAZARDS_SQL, min(lons), min(lats), max(lons), max(lats))
    if not rows:
        return []
    geoms = np.array([_hazard_geometry(r["wkb"]) for r in rows], dtype=object)
    # only hazards touching the hull of the candidates and the incident can hold a unit or cross a route
    hull = shapely.convex_hull(shapely.multipoints(np.column_stack([lons, lats])))
    keep = shapely.intersects(geoms, hull)
    return [(r["id"], g, r["name"]) for r, g, k in zip(rows, geoms, keep.tolist(), strict=True) if k]


_geometries: dict[bytes, Any] = {}
MAX_CACHED_HAZARDS = 20_000


def _hazard_geometry(wkb: bytes) -> Any:
    """A hazard's parsed, prepared geometry, kept per worker by its WKB (so any change is a new entry).

    Hazards change rarely and are read by every recommendation: hashing the bytes is far cheaper than
    parsing and preparing the polygon on every request."""
    geom = _geometries.get(wkb)
    if geom is None:
        if len(_geometries) >= MAX_CACHED_HAZARDS:
            _geometries.clear()
        geom = shapely.from_wkb(wkb)
        shapely.prepare(geom)
        _geometries[wkb] = geom
    return geom


def bounded(
    lon: float,
    lat: float,
    candidates: list[Candidate],
    required: list[str],
    teams: set[str],
    bonus: float,
    speed_mps: float,
    limit: int,
    ranked_prefix: Any,
) -> list[Recommendation]:
    """Rank only as many candidates as needed (branch and bound), since ``rank`` tests every route.

    A candidate's score is at most proximity + skill match + team bonus (penalties only lower it).
    Candidates are ranked in order of that bound, in growing prefixes, until the ``limit``-th actual
    score is at least the bound of the first candidate left out: the result equals ranking them all.
    """
    if not candidates:
        return []
    dist = distances_m(lon, lat, [c.lon for c in candidates], [c.lat for c in candidates])
    need = frozenset(required)
    skill = np.array([len(need & c.skills) / len(need) if need else 1.0 for c in candidates])
    team = np.array([bonus if c.team_id in teams else 0.0 for c in candidates])
    upper = PROXIMITY_WEIGHT * np.exp(-(dist / speed_mps) / ETA_SCALE_S) + SKILL_WEIGHT * skill + team + 1e-6
    order = np.argsort(-upper, kind="stable").tolist()
    k = min(len(order), max(2 * limit, 10))
    while True:
        ranked: list[Recommendation] = ranked_prefix([candidates[i] for i in order[:k]])
        if k >= len(order) or (len(ranked) >= limit and ranked[limit - 1].score >= upper[order[k]]):
            return ranked
        k = min(len(order), 2 * k)


def inside_hazards(candidates: list[Candidate], hazards: list[tuple[str, Any, str]]) -> dict[str, str]:
    """Candidates left out for standing inside an active hazard (vectorised ``geo.dispatch.excluded``)."""
    out: dict[str, str] = {}
    if not candidates or not hazards:
        return out
    lons = np.array([c.lon for c in candidates])
    lats = np.array([c.lat for c in candidates])
    for hid, geom, name in sorted(hazards, key=lambda h: h[0]):
        for i in np.flatnonzero(shapely.contains_xy(geom, lons, lats)).tolist():
            out.setdefault(candidates[i].id, f"inside hazard {name} ({hid})")
    return out


def team_bonus(ranked: list[Recommendation], teams: set[str], bonus: float) -> list[Recommendation]:
    if not teams or bonus == 0:
        return ranked
    out = []
    for r in ranked:
        if r.team_id in teams:
            r = Recommendation(
                **{f: getattr(r, f) for f in r.__struct_fields__ if f not in ("score", "reasons")},
                score=round(r.score + bonus, 6),
                reasons=[*r.reasons, "team: the incident's team"],
            )
        out.append(r)
    out.sort(key=lambda r: (-r.score, r.distance_m, r.id))
    return out


def _out(r: Recommendation, c: Candidate) -> RecommendationOut:
    return RecommendationOut(
        id=r.id,
        kind=r.kind,
        name=c.name,
        score=r.score,
        distance_m=round(r.distance_m, 1),
        eta_s=round(r.eta_s, 1),
        skill_match=r.skill_match,
        inside_hazard=r.inside_hazard,
        route_crosses_hazard=r.route_crosses_hazard,
        crossed_hazards=r.crossed_hazards,
        team_id=r.team_id,
        lon=c.lon,
        lat=c.lat,
        reasons=r.reasons,
    )
