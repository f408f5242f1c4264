"""Incident lists: full-text search (``websearch_to_tsquery``), filters, keyset pagination.

Two orders (``sort``):

* ``recent`` (the default, with or without ``q``): newest first, ``created_at DESC, id DESC``. A search
  only filters the list. It walks ``incidents_created_id_idx`` backwards for at most ``WALK_ROWS``
  rows, stopping after one page (common terms); only when that falls short are the older matches taken
  from the GIN index and sorted (rare terms). It never ranks every match. With ``q`` each item still carries its ``rank``. Cursor:
  ``(created_at, id)`` of the last item.
* ``relevance`` (needs ``q``): by ``ts_rank``, then newest first, **among the most recent
  ``RELEVANCE_WINDOW`` matches** (of the other filters too), so the cost is bounded however many
  incidents match. The first page fixes the window by its oldest member; the cursor carries that floor
  with the last item's ``(rank, created_at, id)``, so later pages rank the same set (plus incidents
  created since, which are newer than the floor) and the walk has no duplicates and no gaps.

Both plans stay bounded whatever the estimates (see ``newest_sql``), so the prepared statement's generic
plan is safe, and their estimated costs (< 10,000) stay far below ``jit_above_cost``. The tsquery is an
InitPlan (``(SELECT websearch_to_tsquery(...))``): as a plain call with a parameter, a generic plan
parsed the search string again for every row it tested.

Rare searches skip the walk: :mod:`.search_stats` estimates the share of incidents a search matches
from the column's lexeme statistics, and when the walk is not expected to fill the page (fewer than
``WALK_MATCHES_PER_PAGE`` pages' worth of matches among the walked rows) the matches come straight from the GIN
index and are sorted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..deps import decode_cursor, encode_cursor, parse_bbox
from ..errors import InvalidInput, NotFound
from . import states
from .repository import INCIDENT_COLS
from .scope import Work, to_incident
from .search_stats import Estimator, Hint
from .service import parse_priority
from .structs import INCIDENT_TYPES, Incident, IncidentPage

SORTS = ("recent", "relevance")
RELEVANCE_WINDOW = 1000
"""``sort=relevance`` ranks the most recent this many matches."""
WALK_ROWS = 2000
"""A newest-first list walks at most this many recent incidents before it asks the GIN index (see ``newest_sql``)."""
WINDOW_WALK_FACTOR = 5
"""... and the relevance window walks at most this many times its size."""
WALK_MATCHES_PER_PAGE = 2.0
"""The walk is used when the rows it may read are expected to hold this many times the matches needed."""

TSQUERY = "(SELECT websearch_to_tsquery('english', ${}))"


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
    sort: str = "recent"


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"invalid {field}", errors=[{"field": field, "message": message}])


def _csv(value: str | None, allowed: tuple[str, ...], field: str) -> list[str]:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise _invalid(field, f"unknown: {', '.join(bad)}")
    return items


def filters(query: IncidentQuery, view_sql: str, args: list[Any]) -> tuple[list[str], str | None]:
    """The WHERE conditions of ``query`` (without the cursor), parameters appended to ``args``, and the
    tsquery expression of ``q`` (None without ``q``)."""
    where = [view_sql]
    tsquery = None
    if q := (query.q or "").strip():
        args.append(q)
        tsquery = TSQUERY.format(len(args))
        where.append(f"i.search @@ {tsquery}")
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
        args.append(query.inside_hazard)
        where.append(f"EXISTS (SELECT 1 FROM hazards h WHERE h.id = ${len(args)} AND ST_Intersects(h.geom, i.geom))")
    if query.in_active_hazard:
        where.append(
            "EXISTS (SELECT 1 FROM hazards h WHERE h.status = 'active' AND (h.valid_until IS NULL OR "
            "h.valid_until > now()) AND h.geom && i.geom AND ST_Intersects(h.geom, i.geom))"
        )
    return where, tsquery


def _time_id(at: str, ident: str) -> tuple[datetime, uuid.UUID]:
    try:
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except ValueError as exc:
        raise _invalid("cursor", "not a cursor") from exc


def walks(hint: Hint | None, need: int, walk: int) -> bool:
    """Whether a newest-first walk of ``walk`` rows is expected to find ``need`` matches (unknown: yes)."""
    return hint is None or hint.fraction * walk >= WALK_MATCHES_PER_PAGE * need


def newest_sql(where: list[str], after: str, k: str, walk: int, *, use_walk: bool = True, split: str = "") -> str:
    """CTEs ``older`` and ``m``: the ``k`` newest incidents passing ``where`` (after ``after``), newest first,
    as narrow rows ``(id, created_at, search)``; ``after`` is a condition on alias ``{a}`` (or TRUE).

    A backward walk of ``incidents_created_id_idx`` stopped at one page is the best plan for common terms;
    for rare ones it reads the whole table, and PostgreSQL cannot always tell them apart (a phrase is
    estimated like AND of its words). So the walk is capped at ``walk`` rows (Append runs its first branch
    first and the LIMIT stops it); only if that yields fewer than ``k`` does the second branch run: every
    older match, found by the GIN index (a materialized CTE is planned to read all its rows, never walked),
    sorted. Cost: at most ``walk`` rows + the older matches, which are few exactly when that branch runs.

    Without ``use_walk`` (a rare search), only the GIN index: every match, sorted; or, given ``split``
    (a timestamp expected to have enough matches after it), first the matches since ``split`` (the GIN
    index on ``(search, created_at)`` reads only those), then, only if they fall short, the older ones."""
    cond = " AND ".join(where)
    if not use_walk and not split:
        return (
            "older AS MATERIALIZED (SELECT i.id, i.created_at, i.search FROM incidents i "
            f"WHERE {cond} AND {after.format(a='i')}), "
            f"m AS (SELECT * FROM older o ORDER BY o.created_at DESC, o.id DESC LIMIT {k})"
        )
    if not use_walk:
        return (
            "newer AS MATERIALIZED (SELECT i.id, i.created_at, i.search FROM incidents i "
            f"WHERE {cond} AND {after.format(a='i')} AND i.created_at >= {split}), "
            "older AS MATERIALIZED (SELECT i.id, i.created_at, i.search FROM incidents i "
            f"WHERE {cond} AND {after.format(a='i')} AND i.created_at < {split}), "
            "m AS (SELECT * FROM ("
            f"(SELECT * FROM newer w ORDER BY w.created_at DESC, w.id DESC LIMIT {k}) UNION ALL "
            f"(SELECT * FROM older o ORDER BY o.created_at DESC, o.id DESC LIMIT {k})) n LIMIT {k})"
        )
    return (
        "older AS MATERIALIZED (SELECT i.id, i.created_at, i.search FROM incidents i "
        f"WHERE {cond} AND {after.format(a='i')}), "
        "m AS (SELECT * FROM ("
        "(SELECT i.id, i.created_at, i.search FROM (SELECT * FROM incidents i "
        f"WHERE {after.format(a='i')} ORDER BY i.created_at DESC, i.id DESC LIMIT {walk}) i WHERE {cond}) "
        "UNION ALL (SELECT * FROM older o WHERE (o.created_at, o.id) < (SELECT b.created_at, b.id "
        f"FROM incidents b WHERE {after.format(a='b')} ORDER BY b.created_at DESC, b.id DESC OFFSET {walk - 1} LIMIT 1) "
        f"ORDER BY o.created_at DESC, o.id DESC LIMIT {k})) n LIMIT {k})"
    )


def recent_sql(query: IncidentQuery, view_sql: str, args: list[Any], hint: Hint | None = None) -> str:
    """Newest first (``sort=recent``); with ``q`` the items carry their rank, computed for the page only."""
    where, tsquery = filters(query, view_sql, args)
    rank = f"ts_rank(m.search, {tsquery})" if tsquery else "NULL::real"
    after = "TRUE"
    before = None
    if (cursor := decode_cursor(query.cursor, 2)) is not None:
        before, cursor_id = _time_id(*cursor)
        args.extend((before, cursor_id))
        after = f"({{a}}.created_at, {{a}}.id) < (${len(args) - 1}, ${len(args)})"
    walk = max(WALK_ROWS, 10 * (query.limit + 1))
    use_walk = walks(hint, query.limit + 1, walk)
    split = ""
    # the window is sized for q alone; other filters (where[2:]) would leave it short, so then read every match
    only_q = len(where) == 2
    if not use_walk and only_q and hint is not None and (since := hint.since(query.limit + 1, before)) is not None:
        args.append(since)
        split = f"${len(args)}::timestamptz"
    args.append(query.limit + 1)
    return (
        f"WITH {newest_sql(where, after, f'${len(args)}', walk, use_walk=use_walk, split=split)} "
        f"SELECT {INCIDENT_COLS}, {rank} AS rank FROM m JOIN incidents i ON i.id = m.id "
        "ORDER BY m.created_at DESC, m.id DESC"
    )


def relevance_sql(
    query: IncidentQuery,
    view_sql: str,
    args: list[Any],
    window: int = RELEVANCE_WINDOW,
    hint: Hint | None = None,
) -> str:
    """By rank among the most recent ``window`` matches (``sort=relevance``).

    The window's narrow rows (id, created_at, rank) are ranked; only the page's rows are read in full.
    Each row also says the window's floor, its oldest member (``window_at``, ``window_id``); later pages
    (the floor in their cursor) take every match from the floor on, which is the same set."""
    where, tsquery = filters(query, view_sql, args)
    cursor = decode_cursor(query.cursor, 5)
    page = "TRUE"
    if cursor is None:
        args.append(window)
        walk = WINDOW_WALK_FACTOR * window
        matches = f"WITH {newest_sql(where, 'TRUE', f'${len(args)}', walk, use_walk=walks(hint, window, walk))}, "
    else:
        args.extend(_time_id(cursor[3], cursor[4]))
        where.append(f"(i.created_at, i.id) >= (${len(args) - 1}, ${len(args)})")
        matches = f"WITH m AS MATERIALIZED (SELECT i.id, i.created_at, i.search FROM incidents i WHERE {' AND '.join(where)}), "
        try:
            args.append(float(cursor[0]))
        except ValueError as exc:
            raise _invalid("cursor", "not a cursor") from exc
        args.extend(_time_id(cursor[1], cursor[2]))
        page = f"(w.rank, w.created_at, w.id) < (${len(args) - 2}::real, ${len(args) - 1}, ${len(args)})"
    args.append(query.limit + 1)
    return (
        matches + f"w AS MATERIALIZED (SELECT m.id, m.created_at, ts_rank(m.search, {tsquery}) AS rank FROM m), "
        f"p AS (SELECT * FROM w WHERE {page} ORDER BY w.rank DESC, w.created_at DESC, w.id DESC LIMIT ${len(args)}), "
        "f AS (SELECT w.created_at, w.id FROM w ORDER BY w.created_at, w.id LIMIT 1) "
        f"SELECT {INCIDENT_COLS}, p.rank, (SELECT created_at FROM f) AS window_at, (SELECT id FROM f) AS window_id "
        "FROM p JOIN incidents i ON i.id = p.id ORDER BY p.rank DESC, p.created_at DESC, p.id DESC"
    )


def build_sql(
    query: IncidentQuery,
    view_sql: str,
    args: list[Any],
    window: int = RELEVANCE_WINDOW,
    hint: Hint | None = None,
) -> str:
    """The list's SQL for ``query`` (validated), its parameters appended to ``args``; ``hint`` holds what the
    statistics say about ``q`` (:func:`search_hint`; None: unknown, the plan that is safe either way)."""
    if query.sort not in SORTS:
        raise _invalid("sort", f"one of {', '.join(SORTS)}")
    if query.sort == "relevance":
        if not (query.q or "").strip():
            raise _invalid("sort", "sort=relevance needs q")
        return relevance_sql(query, view_sql, args, window, hint)
    return recent_sql(query, view_sql, args, hint)


_estimator = Estimator()


async def search_hint(conn: asyncpg.Connection, query: IncidentQuery) -> Hint | None:
    """What the (per-worker cached) statistics say about ``query.q``; None without ``q``."""
    q = (query.q or "").strip()
    return await _estimator.hint(conn, q) if q else None


async def fetch(conn: asyncpg.Connection, sql: str, args: list[Any]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def list_incidents(
    work: Work, query: IncidentQuery, *, max_limit: int = 1000, window: int = RELEVANCE_WINDOW
) -> IncidentPage:
    if not 1 <= query.limit <= max_limit:
        raise InvalidInput(
            f"limit must be 1..{max_limit}", errors=[{"field": "limit", "message": f"must be 1..{max_limit}"}]
        )
    if query.inside_hazard is not None and not await work.conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM hazards WHERE id = $1)", query.inside_hazard
    ):
        raise NotFound("no such hazard")
    args: list[Any] = []
    view_sql = (await work.view()).condition(args)
    sql = build_sql(query, view_sql, args, window, await search_hint(work.conn, query))
    rows = await fetch(work.conn, sql, args)
    items: list[Incident] = []
    for row in rows[: query.limit]:
        values = dict(row)
        values.pop("window_at", None)
        values.pop("window_id", None)
        items.append(to_incident(values))
    next_cursor = None
    if len(rows) > query.limit:
        last = items[-1]
        if query.sort == "relevance":
            carried = decode_cursor(query.cursor, 5)
            floor = (carried[3], carried[4]) if carried else (rows[0]["window_at"].isoformat(), rows[0]["window_id"])
            next_cursor = encode_cursor(repr(last.rank), last.created_at.isoformat(), last.id, *floor)
        else:
            next_cursor = encode_cursor(last.created_at.isoformat(), last.id)
    return IncidentPage(items=items, next_cursor=next_cursor)
