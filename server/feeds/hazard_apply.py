"""A whole parsed feed document → hazards, in one transaction with a handful of statements.

The rules are :func:`server.hazards.repository.upsert_external_hazard`'s (and the feed tests'
in-memory sink's): a hazard is ``(source, external_id)`` at a ``version``; a newer version replaces
every field, the geometry and the H3 cells (an ended hazard comes back); the same or an older
version changes nothing; ``references`` end the active hazards they replace; a cancelled or
expired item ends its own (an unknown one is not created). On top of that, active hazards of the
document's sources whose ``valid_until`` has passed and that the document no longer lists are
ended (feeds drop expired items silently).

Why not call ``upsert_external_hazard`` per item: it makes ~7 round trips per item, which is
fine for a handful but not for the 13,582 fire areas of one global FIRMS file. Here the
lookups, ends and fence notifications are each one statement, and the inserts, updates and cell
rows (COPY) one per chunk of items: the geometry and H3 work runs in a thread, chunk by chunk, and
the next chunk is prepared while PostgreSQL writes the previous one (chunks double in size from
:data:`FIRST_CHUNK`, so the first write starts early and later ones pay few round trips).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from feeds.model import HazardItem, ItemError
from feeds.scheduler import ApplySummary
from server.bus import Change
from server.hazards.repository import (
    DEFAULT_POINT_RADIUS_M,
    FENCE_CHANNEL,
    HAZARD_COLS,
    SEVERITIES,
    hazard_change,
    is_newer_version,
)

from .covers import CoverCache, Prepared, prepare_items

Key = tuple[str, str]

FIRST_CHUNK = 32
"""Items in the first prepare/write chunk; each next one is twice as big, up to :data:`MAX_CHUNK`."""
MAX_CHUNK = 2048


@dataclass
class Applied:
    summary: ApplySummary = field(default_factory=ApplySummary)
    changes: list[Change] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    touched: list[uuid.UUID] = field(default_factory=list)


def _dedupe(items: Sequence[HazardItem]) -> list[HazardItem]:
    """One item per key: the newest version (the later one on a tie)."""
    best: dict[Key, HazardItem] = {}
    for item in items:
        key = (item.source, item.external_id)
        old = best.get(key)
        if old is None or not is_newer_version(old.version, item.version):
            best[key] = item
    return list(best.values())


_INSERT = """
INSERT INTO hazards (source, external_id, version, kind, severity, title, description, geom, h3_res,
                     valid_from, valid_until, is_public, raw)
SELECT u.source, u.ext, u.version, u.kind, u.severity, u.title, u.descr,
       CASE WHEN u.wkb IS NOT NULL THEN ST_GeomFromWKB(u.wkb, 4326)
            ELSE ST_SetSRID(ST_GeomFromGeoJSON(u.gj), 4326) END,
       u.res, u.vf, u.vu, true, u.raw::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::bytea[], $9::text[], $10::int2[], $11::timestamptz[], $12::timestamptz[], $13::text[])
     AS u(source, ext, version, kind, severity, title, descr, wkb, gj, res, vf, vu, raw)
RETURNING id, source, external_id
"""

_UPDATE = """
UPDATE hazards h SET version = u.version, kind = u.kind, severity = u.severity, title = u.title,
       description = u.descr,
       geom = CASE WHEN u.wkb IS NOT NULL THEN ST_GeomFromWKB(u.wkb, 4326)
                   ELSE ST_SetSRID(ST_GeomFromGeoJSON(u.gj), 4326) END,
       h3_res = u.res, valid_from = u.vf, valid_until = u.vu, is_public = true, raw = u.raw::jsonb,
       status = 'active', ended_at = NULL, updated_at = clock_timestamp()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bytea[], $8::text[], $9::int2[], $10::timestamptz[], $11::timestamptz[], $12::text[])
     AS u(id, version, kind, severity, title, descr, wkb, gj, res, vf, vu, raw)
WHERE h.id = u.id
"""

_END = """
UPDATE hazards SET status = 'ended', ended_at = coalesce(ended_at, now()), updated_at = clock_timestamp()
WHERE id = ANY($1::uuid[]) AND status <> 'ended' RETURNING id
"""

_SWEEP = """
UPDATE hazards SET status = 'ended', ended_at = coalesce(ended_at, now()), updated_at = clock_timestamp()
WHERE source = ANY($1::text[]) AND status = 'active' AND valid_until IS NOT NULL AND valid_until < now()
  AND NOT id = ANY($2::uuid[])
RETURNING id
"""


def _columns(rows: Sequence[Prepared]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(11)]
    for p in rows:
        i = p.item
        values = (
            i.version,
            i.kind,
            i.severity if i.severity in SEVERITIES else "unknown",
            i.title,
            i.description,
            p.wkb,
            p.geojson,
            p.res,
            i.valid_from,
            i.valid_until,
            msgspec.json.encode(i.raw).decode() if i.raw else None,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


def _chunks(items: Sequence[HazardItem]) -> list[Sequence[HazardItem]]:
    out: list[Sequence[HazardItem]] = []
    start, size = 0, FIRST_CHUNK
    while start < len(items):
        out.append(items[start : start + size])
        start, size = start + size, min(2 * size, MAX_CHUNK)
    return out


def _prepare(
    items: Sequence[HazardItem], point_radius_m: float, cache: CoverCache | None
) -> asyncio.Future[tuple[list[Prepared], list[ItemError]]]:
    return asyncio.ensure_future(asyncio.to_thread(prepare_items, items, point_radius_m, cache))


async def _write_chunk(
    conn: asyncpg.Connection,
    prepared: list[Prepared],
    existing: dict[Key, asyncpg.Record],
    ids: dict[Key, uuid.UUID],
    out: Applied,
) -> None:
    """Insert or update one chunk's hazards and COPY their cells (``ids`` gains their ids)."""
    creates = [p for p in prepared if (p.item.source, p.item.external_id) not in existing]
    updates = [p for p in prepared if (p.item.source, p.item.external_id) in existing]
    if creates:
        c = creates
        rows = await conn.fetch(_INSERT, [p.item.source for p in c], [p.item.external_id for p in c], *_columns(c))
        ids.update({(r["source"], r["external_id"]): r["id"] for r in rows})
        out.summary.created += len(rows)
    if updates:
        upd_ids = [existing[(p.item.source, p.item.external_id)]["id"] for p in updates]
        await conn.execute(_UPDATE, upd_ids, *_columns(updates))
        await conn.execute("DELETE FROM hazard_cells WHERE hazard_id = ANY($1::uuid[])", upd_ids)
        ids.update({(p.item.source, p.item.external_id): i for p, i in zip(updates, upd_ids, strict=True)})
        out.summary.updated += len(updates)
    records = [(ids[(p.item.source, p.item.external_id)], cell, inner)
               for p in prepared for cell, inner in zip(p.cells, p.interior, strict=True)]  # fmt: skip
    if records:
        await conn.copy_records_to_table("hazard_cells", records=records, columns=["hazard_id", "cell", "interior"])


async def apply_items(
    conn: asyncpg.Connection,
    items: Sequence[HazardItem],
    *,
    sweep_sources: Sequence[str] = (),
    point_radius_m: float = DEFAULT_POINT_RADIUS_M,
    cache: CoverCache | None = None,
) -> Applied:
    """Apply one document's items. Call inside a transaction; publish ``changes`` after commit."""
    out = Applied()
    items = _dedupe(items)
    keys = {(i.source, i.external_id) for i in items}
    refs = {(i.source, r) for i in items for r in i.references if r != i.external_id}
    lookup = list(keys | refs)
    existing: dict[Key, asyncpg.Record] = {}
    if lookup:
        rows = await conn.fetch(
            "SELECT h.id, h.source, h.external_id, h.version, h.status FROM hazards h "
            "JOIN unnest($1::text[], $2::text[]) AS k(source, ext) ON h.source = k.source AND h.external_id = k.ext "
            "ORDER BY h.id FOR UPDATE OF h",
            [k[0] for k in lookup],
            [k[1] for k in lookup],
        )
        existing = {(r["source"], r["external_id"]): r for r in rows}
    to_end: set[uuid.UUID] = {existing[k]["id"] for k in refs if k in existing and existing[k]["status"] == "active"}
    to_write: list[HazardItem] = []
    for item in items:
        old = existing.get((item.source, item.external_id))
        if item.status != "active":
            if old is not None and old["status"] != "ended":
                to_end.add(old["id"])
            else:
                out.summary.unchanged += 1
            continue
        if old is not None and not is_newer_version(item.version, old["version"]):
            out.summary.unchanged += 1
            continue
        to_write.append(item)
    ids: dict[Key, uuid.UUID] = {}
    chunks = _chunks(to_write)
    pending = _prepare(chunks[0], point_radius_m, cache) if chunks else None
    try:
        for k in range(len(chunks)):
            assert pending is not None
            prepared, errors = await pending
            # the next chunk's covers are computed while this one is written
            pending = _prepare(chunks[k + 1], point_radius_m, cache) if k + 1 < len(chunks) else None
            out.errors += errors
            await _write_chunk(conn, prepared, existing, ids, out)
    finally:
        if pending is not None:  # a write failed: the transaction is lost, its thread's result too
            pending.cancel()
    to_end -= {existing[key]["id"] for key in ids if key in existing}  # referenced and republished newer: stays
    ended: list[uuid.UUID] = []
    if to_end:
        ended = [r["id"] for r in await conn.fetch(_END, list(to_end))]
    if sweep_sources:  # what the document still lists as active is the parser's call, not the clock's
        current = [existing[k]["id"] for k in keys if k in existing] + list(ids.values())
        ended += [r["id"] for r in await conn.fetch(_SWEEP, list(sweep_sources), current)]
    out.summary.ended = len(set(ended))
    out.touched = list(dict.fromkeys([*ids.values(), *ended]))
    if out.touched:
        await conn.execute(
            "SELECT pg_notify($1, 'hazard:' || x::text) FROM unnest($2::uuid[]) AS x", FENCE_CHANNEL, out.touched
        )
        rows = await conn.fetch(f"SELECT {HAZARD_COLS} FROM hazards h WHERE h.id = ANY($1::uuid[])", out.touched)
        out.changes = [hazard_change(r) for r in rows]
    return out
