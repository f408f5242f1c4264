"""Per-responder reads of a :class:`geo.fences.FenceEngine` for incremental persistence.

The engine's public ``snapshot()``/``positions()`` walk every responder; the evaluator persists
only the responders a batch touched, so it reads the engine's per-responder records here (the one
place that knows their shape). A public ``visits_of(responder_ids)`` in ``geo.fences`` would
replace this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from geo.fences import FenceEngine


def visits_of(engine: FenceEngine, responder_ids: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``responder -> fence -> visit`` (same keys as ``snapshot()`` rows) for the given responders."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    responders = engine._responders
    for rid in responder_ids:
        resp = responders.get(rid)
        if resp is None:
            out[rid] = {}
            continue
        out[rid] = {
            fid: {
                "state": v.state,
                "since": v.since,
                "group": v.group,
                "last_fix_time": v.last_fix_time,
                "fence_version": v.fence_version,
            }
            for fid, v in resp.visits.items()
        }
    return out


def all_visits(engine: FenceEngine) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in engine.snapshot():
        rid, fid = row.pop("responder_id"), row.pop("fence_id")
        out.setdefault(rid, {})[fid] = row
    return out


def positions_of(engine: FenceEngine, responder_ids: Iterable[str]) -> list[dict[str, Any]]:
    responders = engine._responders
    rows = []
    for rid in responder_ids:
        r = responders.get(rid)
        if r is None or math.isnan(r.lon):
            continue
        rows.append(
            {
                "responder_id": rid,
                "team_id": r.team_id,
                "lon": r.lon,
                "lat": r.lat,
                "fix_time": r.fix_time,
                "accuracy_m": r.accuracy_m,
                "seq": r.seq,
            }
        )
    return rows
