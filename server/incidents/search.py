"""Incident lists: full-text search (``websearch_to_tsquery`` + rank), filters, keyset pagination.

Without ``q`` the order is newest first (``created_at, id``); with ``q`` it is by relevance
(``ts_rank``), then newest first. The cursor carries the sort key of the last row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..deps import decode_cursor, encode_cursor, parse_bbox
from ..errors import InvalidInput, NotFound
from . import states
from .repository import INCIDENT_COLS
from .scope import Work, to_incident
from .service import parse_priority
from .structs import INCIDENT_TYPES, Incident, IncidentPage


@dataclass
class IncidentQuery:
    q: str | None = None
    status: str | None = None
    priority: str | None = None
    type: str | None = None
    team_id: uuid.UUID | None = None
    bbox: str | None = None
    from_: datetime | None = None
    to: datetime | None = None
    inside_hazard: uuid.UUID | None = None
    in_active_hazard: bool | None = None
    limit: int = 50
    cursor: str | None = None


def _csv(value: str | None, allowed: tuple[str, ...], field: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise InvalidInput(f"invalid {field}", errors=[{"field": field, "message": f"unknown: {', '.join(bad)}"}])
    return items


async def list_incidents(work: Work, query: IncidentQuery, *, max_limit: int = 1000) -> IncidentPage:
    if not 1 <= query.limit <= max_limit:
        raise InvalidInput(
            f"limit must be 1..{max_limit}", errors=[{"field": "limit", "message": f"must be 1..{max_limit}"}]
        )
    args: list[Any] = []
    where = [(await work.view()).condition(args)]
    q = (query.q or "").strip()
    rank_sql = "NULL::real"
    if q:
        args.append(q)
        where.append(f"i.search @@ websearch_to_tsquery('english', ${len(args)})")
        rank_sql = f"ts_rank(i.search, websearch_to_tsquery('english', ${len(args)}))"
    if statuses := _csv(query.status, states.STATUSES, "status"):
        args.append(statuses)
        where.append(f"i.status = ANY(${len(args)}::text[])")
    if query.priority:
        args.append([parse_priority(p.strip()) for p in query.priority.split(",") if p.strip()])
        where.append(f"i.priority = ANY(${len(args)}::smallint[])")
    if types := _csv(query.type, INCIDENT_TYPES, "type"):
        args.append(types)
        where.append(f"i.type = ANY(${len(args)}::text[])")
    if query.team_id is not None:
        args.append(query.team_id)
        where.append(f"i.team_id = ${len(args)}")
    if query.bbox:
        args.extend(parse_bbox(query.bbox) or ())
        n = len(args)
        where.append(f"i.geom && ST_MakeEnvelope(${n - 3}, ${n - 2}, ${n - 1}, ${n}, 4326)")
    if query.from_ is not None:
        args.append(query.from_)
        where.append(f"i.created_at >= ${len(args)}")
    if query.to is not None:
        args.append(query.to)
        where.append(f"i.created_at < ${len(args)}")
    if query.inside_hazard is not None:
        if not await work.conn.fetchval("SELECT EXISTS (SELECT 1 FROM hazards WHERE id = $1)", query.inside_hazard):
            raise NotFound("no such hazard")
        args.append(query.inside_hazard)
        where.append(f"EXISTS (SELECT 1 FROM hazards h WHERE h.id = ${len(args)} AND ST_Intersects(h.geom, i.geom))")
    if query.in_active_hazard:
        where.append(
            "EXISTS (SELECT 1 FROM hazards h WHERE h.status = 'active' AND (h.valid_until IS NULL OR "
            "h.valid_until > now()) AND h.geom && i.geom AND ST_Intersects(h.geom, i.geom))"
        )
    after = decode_cursor(query.cursor, 3 if q else 2)
    if after is not None:
        try:
            if q:
                args.extend([float(after[0]), datetime.fromisoformat(after[1]), uuid.UUID(after[2])])
                n = len(args)
                where.append(f"({rank_sql}, i.created_at, i.id) < (${n - 2}::real, ${n - 1}, ${n})")
            else:
                args.extend([datetime.fromisoformat(after[0]), uuid.UUID(after[1])])
                n = len(args)
                where.append(f"(i.created_at, i.id) < (${n - 1}, ${n})")
        except ValueError as exc:
            raise InvalidInput("invalid cursor", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc
    order = "rank DESC, i.created_at DESC, i.id DESC" if q else "i.created_at DESC, i.id DESC"
    args.append(query.limit + 1)
    sql = (
        f"SELECT {INCIDENT_COLS}, {rank_sql} AS rank FROM incidents i WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT ${len(args)}"
    )
    rows = await work.conn.fetch(sql, *args)
    items: list[Incident] = [to_incident(r) for r in rows[: query.limit]]
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        key = (repr(last.rank),) if q else ()
        next_cursor = encode_cursor(*key, last.created_at.isoformat(), last.id)
    return IncidentPage(items=items, next_cursor=next_cursor)
