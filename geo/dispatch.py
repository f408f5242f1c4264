"""Hazard-aware dispatch ranking: who is closest, able and safe to send.

Pure function of the candidates' last positions, the incident location and the active hazards.
Excluded: unavailable or stale units, and units standing inside a hazard (unless
``include_flagged``). Penalised: a straight route that crosses a hazard. Every recommendation says
why it ranks where it does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from geo.geodesy import distances_m, route_lines

CandidateKind = Literal["responder", "resource"]
SKILL_WEIGHT = 40.0
PROXIMITY_WEIGHT = 60.0
ETA_SCALE_S = 900.0
"""ETA at which the proximity part of the score has fallen to 1/e (15 minutes)."""
CROSSING_PENALTY = 15.0
FLAGGED_PENALTY = 50.0


class Candidate(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    kind: CandidateKind = "responder"
    lon: float
    lat: float
    fix_time: datetime | None = None
    """None for a unit with a fixed location (a resource at its station): never stale."""
    status: str = "available"
    team_id: str | None = None
    skills: frozenset[str] = frozenset()
    name: str = ""


class Recommendation(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    kind: CandidateKind
    score: float
    """Higher is better: proximity (0-60) + skill match (0-40) - penalties."""
    distance_m: float
    eta_s: float
    skill_match: float
    inside_hazard: str | None
    route_crosses_hazard: bool
    crossed_hazards: list[str]
    stale: bool
    team_id: str | None
    reasons: list[str]


def _hazard_parts(hazard: Sequence[Any]) -> tuple[str, BaseGeometry, str]:
    hid = str(hazard[0])
    geom = hazard[1]
    name = str(hazard[2]) if len(hazard) > 2 and hazard[2] else hid
    return hid, geom, name


def format_distance(distance_m: float) -> str:
    return f"{distance_m:.0f} m" if distance_m < 1000 else f"{distance_m / 1000:.1f} km"


def format_eta(eta_s: float) -> str:
    minutes = max(1, round(eta_s / 60.0))
    return f"~{minutes} min" if minutes < 90 else f"~{minutes / 60:.1f} h"


def rank(
    incident_lon: float,
    incident_lat: float,
    candidates: Iterable[Candidate],
    *,
    required_skills: Iterable[str] = (),
    hazards: Sequence[Sequence[Any]] = (),
    now: datetime,
    stale_after_s: float = 300.0,
    speed_mps: float = 13.9,
    limit: int = 10,
    include_flagged: bool = False,
    statuses: frozenset[str] = frozenset({"available"}),
) -> list[Recommendation]:
    """Rank candidates for an incident. ``hazards`` holds ``(id, geometry)`` or ``(id, geometry, name)``.

    ETA is the geodesic distance over ``speed_mps`` (no road network). Ties break on distance, then id.
    """
    if speed_mps <= 0:
        raise ValueError("speed_mps must be positive")
    required = frozenset(required_skills)
    pool = [c for c in candidates if c.status in statuses]
    if not pool:
        return []
    lons = np.fromiter((c.lon for c in pool), dtype=np.float64, count=len(pool))
    lats = np.fromiter((c.lat for c in pool), dtype=np.float64, count=len(pool))
    dist = distances_m(incident_lon, incident_lat, lons, lats)

    hz = [_hazard_parts(h) for h in hazards]
    names = {hid: name for hid, _, name in hz}
    inside_of: list[str | None] = [None] * len(pool)
    crossed_of: list[list[int]] = [[] for _ in pool]
    incident_in: list[str] = []
    route_hazards: list[tuple[str, BaseGeometry]] = []
    if hz:
        # one spatial index over the hazards, queried with every point and every route at once
        tree = shapely.STRtree([g for _, g, _ in hz])
        points = shapely.points(lons, lats)
        pi, hi = tree.query(points, predicate="within")
        for i, h in sorted(zip(pi.tolist(), hi.tolist(), strict=True), key=lambda p: (p[0], hz[p[1]][0])):
            if inside_of[i] is None:
                inside_of[i] = hz[h][0]  # the first by hazard id
        around = set(tree.query(shapely.points(incident_lon, incident_lat), predicate="within").tolist())
        incident_in = [names[hid] for k, (hid, _, _) in enumerate(hz) if k in around]
        # a hazard around the incident itself is crossed by every route: it does not discriminate
        route_hazards = [(hid, g) for k, (hid, g, _) in enumerate(hz) if k not in around]
        if route_hazards:
            route_tree = shapely.STRtree([g for _, g in route_hazards])
            li, ri = route_tree.query(route_lines(lons, lats, incident_lon, incident_lat), predicate="intersects")
            for i, r in sorted(zip(li.tolist(), ri.tolist(), strict=True)):
                crossed_of[i].append(r)

    recs: list[Recommendation] = []
    for i, cand in enumerate(pool):
        d = float(dist[i])
        eta = d / speed_mps
        stale = cand.fix_time is None if cand.kind == "responder" else False
        if cand.fix_time is not None:
            stale = (now - cand.fix_time).total_seconds() > stale_after_s
        if stale:
            continue
        flagged = inside_of[i]
        if flagged is not None and not include_flagged:
            continue
        has = required & cand.skills
        skill_match = len(has) / len(required) if required else 1.0
        crossed = [hid for hid in (route_hazards[r][0] for r in crossed_of[i]) if hid != flagged]
        score = PROXIMITY_WEIGHT * math.exp(-eta / ETA_SCALE_S) + SKILL_WEIGHT * skill_match
        reasons = [f"{format_distance(d)}, {format_eta(eta)}"]
        reasons.extend(f"has skill: {s}" for s in sorted(has))
        reasons.extend(f"missing skill: {s}" for s in sorted(required - cand.skills))
        if crossed:
            score -= CROSSING_PENALTY * len(crossed)
            reasons.extend(f"route crosses hazard {names[h]} (penalty)" for h in crossed)
        if flagged is not None:
            score -= FLAGGED_PENALTY
            reasons.append(f"inside hazard {names[flagged]} (flagged)")
        if cand.fix_time is not None:
            reasons.append(f"position {int((now - cand.fix_time).total_seconds())} s old")
        reasons.extend(f"incident inside hazard {n}" for n in incident_in)
        recs.append(
            Recommendation(
                id=cand.id,
                kind=cand.kind,
                score=round(score, 6),
                distance_m=d,
                eta_s=eta,
                skill_match=skill_match,
                inside_hazard=flagged,
                route_crosses_hazard=bool(crossed),
                crossed_hazards=crossed,
                stale=False,
                team_id=cand.team_id,
                reasons=reasons,
            )
        )
    recs.sort(key=lambda r: (-r.score, r.distance_m, r.id))
    return recs[:limit]


def excluded(
    candidates: Iterable[Candidate],
    *,
    hazards: Sequence[Sequence[Any]] = (),
    now: datetime,
    stale_after_s: float = 300.0,
    statuses: frozenset[str] = frozenset({"available"}),
) -> dict[str, str]:
    """Why each excluded candidate was left out (``id -> reason``), for the UI."""
    out: dict[str, str] = {}
    hz = [_hazard_parts(h) for h in hazards]
    for c in candidates:
        if c.status not in statuses:
            out[c.id] = f"status {c.status}"
        elif (c.fix_time is None and c.kind == "responder") or (
            c.fix_time is not None and (now - c.fix_time).total_seconds() > stale_after_s
        ):
            out[c.id] = "position is stale"
        else:
            for hid, g, name in sorted(hz, key=lambda h: h[0]):
                if bool(shapely.contains_xy(g, c.lon, c.lat)):
                    out[c.id] = f"inside hazard {name} ({hid})"
                    break
    return out
