"""Reports: the summary over a period, incident counts per H3 cell, and the after-action record.

All of them respect the caller's scope (a team coordinator reports on their teams' incidents).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from geo.h3index import RES_POSITION, cell_center

from ..errors import InvalidInput
from . import repository as repo
from .assignments import to_assignment
from .scope import Work, to_incident
from .structs import Assignment, Incident, TimelineEntry

STAGES = (
    ("acknowledge", "acknowledged_at"),
    ("dispatch", "dispatched_at"),
    ("arrive", "on_scene_at"),
    ("resolve", "resolved_at"),
)


class StageTimes(msgspec.Struct, kw_only=True):
    count: int
    mean_min: float | None
    p90_min: float | None


class Utilisation(msgspec.Struct, kw_only=True):
    responders: int
    by_status: dict[str, int]
    assigned_hours: float
    utilisation: float
    """Assigned responder-hours (not declined, clipped to the period) over roster responder-hours."""


class Summary(msgspec.Struct, kw_only=True):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    by_priority: dict[str, int]
    times: dict[str, StageTimes]
    responders: Utilisation


class HexBin(msgspec.Struct, kw_only=True):
    cell: str
    count: int
    lon: float
    lat: float


class HexBins(msgspec.Struct, kw_only=True):
    res: int
    from_: datetime = msgspec.field(name="from")
    to: datetime
    items: list[HexBin]


class AfterAction(msgspec.Struct, kw_only=True):
    incident: Incident
    assignments: list[Assignment]
    durations_min: dict[str, float | None]
    timeline: list[TimelineEntry]


def period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("times need a zone", errors=[{"field": "from", "message": "RFC 3339 with offset"}])
    if start >= end:
        raise InvalidInput("empty period", errors=[{"field": "from", "message": "must be before to"}])
    return start, end


async def summary(work: Work, start: datetime | None, end: datetime | None) -> Summary:
    start, end = period(start, end)
    args: list[Any] = [start, end]
    scope = (await work.view()).condition(args)
    base = f"FROM incidents i WHERE i.created_at >= $1 AND i.created_at < $2 AND {scope}"
    counts: dict[str, dict[str, int]] = {}
    for col in ("type", "status", "priority"):
        rows = await work.conn.fetch(f"SELECT i.{col}::text AS k, count(*) AS n {base} GROUP BY 1 ORDER BY 1", *args)
        counts[col] = {r["k"]: r["n"] for r in rows}
    times = {}
    for name, col in STAGES:
        row = await work.conn.fetchrow(
            f"SELECT count(d) AS n, avg(d) AS mean, percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90 FROM "
            f"(SELECT extract(epoch FROM i.{col} - i.created_at) / 60.0 AS d {base} AND i.{col} IS NOT NULL) s",
            *args,
        )
        times[name] = StageTimes(
            count=row["n"],
            mean_min=None if row["mean"] is None else round(float(row["mean"]), 2),
            p90_min=None if row["p90"] is None else round(float(row["p90"]), 2),
        )
    return Summary(
        from_=start,
        to=end,
        total=sum(counts["status"].values()),
        by_type=counts["type"],
        by_status=counts["status"],
        by_priority={f"P{k}": v for k, v in counts["priority"].items()},
        times=times,
        responders=await utilisation(work, start, end),
    )


async def utilisation(work: Work, start: datetime, end: datetime) -> Utilisation:
    view = await work.view()
    teams = view.teams if view.is_staff else None
    rows = await work.conn.fetch(
        "SELECT status, count(*) AS n FROM responders WHERE $1::uuid[] IS NULL OR team_id = ANY($1) GROUP BY status",
        teams,
    )
    by_status = {r["status"]: r["n"] for r in rows}
    assigned_s = await work.conn.fetchval(
        "SELECT coalesce(sum(extract(epoch FROM least(coalesce(a.released_at, now()), $2) - greatest(a.created_at, $1))), 0) "
        "FROM assignments a JOIN responders r ON r.id = a.responder_id "
        "WHERE a.status <> 'declined' AND a.created_at < $2 AND coalesce(a.released_at, now()) > $1 "
        "AND ($3::uuid[] IS NULL OR r.team_id = ANY($3))",
        start,
        end,
        teams,
    )
    roster = sum(by_status.values())
    roster_s = roster * (end - start).total_seconds()
    return Utilisation(
        responders=roster,
        by_status=by_status,
        assigned_hours=round(float(assigned_s) / 3600, 3),
        utilisation=round(float(assigned_s) / roster_s, 4) if roster_s else 0.0,
    )


def _parent_sql(res: int) -> tuple[int, int]:
    """Masks turning a res-9 cell (bigint) into its ``res`` parent: ``(h3 & keep) | set``."""
    digits = 0
    for d in range(res + 1, 16):
        digits |= 7 << (3 * (15 - d))
    keep = ~((0xF << 52) | digits) & (2**63 - 1)
    return keep, (res << 52) | digits


async def hexbins(work: Work, res: int, start: datetime | None, end: datetime | None) -> HexBins:
    if not 0 <= res <= RES_POSITION:
        raise InvalidInput("invalid res", errors=[{"field": "res", "message": f"must be 0..{RES_POSITION}"}])
    start, end = period(start, end)
    keep, setbits = _parent_sql(res)
    args: list[Any] = [start, end, keep, setbits]
    scope = (await work.view()).condition(args)
    rows = await work.conn.fetch(
        "SELECT (i.h3 & $3) | $4 AS cell, count(*) AS n FROM incidents i "
        f"WHERE i.created_at >= $1 AND i.created_at < $2 AND {scope} GROUP BY 1 ORDER BY 2 DESC, 1",
        *args,
    )
    items = []
    for r in rows:
        lon, lat = cell_center(r["cell"])
        items.append(HexBin(cell=format(r["cell"], "x"), count=r["n"], lon=round(lon, 6), lat=round(lat, 6)))
    return HexBins(res=res, from_=start, to=end, items=items)


async def after_action(work: Work, incident_id: uuid.UUID) -> AfterAction:
    row = await work.visible_incident(incident_id)
    incident = to_incident(row)
    entries = [TimelineEntry(**dict(r)) for r in await repo.timeline(work.conn, incident_id, after=0, limit=100_000)]
    assignments = [to_assignment(r) for r in await repo.incident_assignments(work.conn, incident_id)]
    durations: dict[str, float | None] = {}
    for name, col in (*STAGES, ("close", "closed_at")):
        at = row[col]
        durations[f"to_{name}"] = None if at is None else round((at - row["created_at"]).total_seconds() / 60, 2)
    return AfterAction(incident=incident, assignments=assignments, durations_min=durations, timeline=entries)
