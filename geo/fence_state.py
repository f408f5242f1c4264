"""Internal state records of the fence engine and its counters (see :mod:`geo.fences`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shapely.geometry.base import BaseGeometry

from geo.cover import PolygonCover
from geo.fence_model import Fence, Reason

INSIDE = "inside"
PENDING = "pending"
OUTSIDE = "outside"
"""Visit states; an OUTSIDE visit is kept only for fences that emit ``outside`` events."""


@dataclass
class EngineStats:
    """Counters for monitoring and the benchmark."""

    fixes_received: int = 0
    fixes_evaluated: int = 0
    late_fixes: int = 0
    batches: int = 0
    candidate_pairs: int = 0
    """(fix, fence) pairs from the H3 prefilter plus pairs kept because a visit is open."""
    exact_tests: int = 0
    """Pairs that needed shapely (boundary cells); interior-cell pairs are hits without a test."""
    brute_force_pairs: int = 0
    """n_fixes × n_fences for the same batches: what a scan without an index would test."""
    events: int = 0
    reevaluations: int = 0


@dataclass(slots=True)
class _Visit:
    state: str
    since: datetime
    group: str
    last_fix_time: datetime
    fence_version: int


@dataclass(slots=True)
class _Responder:
    team_id: str | None
    lon: float
    lat: float
    fix_time: datetime
    accuracy_m: float | None
    seq: int
    visits: dict[str, _Visit] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    fence: Fence
    slot: int
    cover: PolygonCover
    outer: BaseGeometry | None
    edges: dict[bool, BaseGeometry] = field(default_factory=dict)
    """Prepared boundaries (``False``: the fence, ``True``: the hysteresis buffer), made on first use."""


@dataclass(slots=True)
class _Probe:
    """What one evaluation looks at: a fix, or a responder's last position during a fence change."""

    responder_id: str
    team_id: str | None
    fix_time: datetime
    lon: float
    lat: float
    accuracy_m: float | None
    seq: int | None
    late: bool
    reason: Reason
    index: int = -1
    """Position of the fix in its evaluation batch (-1 for fence changes): keys precomputed tests."""
