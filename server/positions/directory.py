"""Which responder ids exist (and their team), cached per worker for a short while.

Ingest checks every fix's responder; asking PostgreSQL per request would cost a round trip on
the hot path, so known ids are remembered for ``ttl_s`` and misses are looked up in one query.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import asyncpg

from ..ttlcache import MISSING, TtlCache


class ResponderDirectory:
    def __init__(self, ttl_s: float = 30.0, max_entries: int = 200_000) -> None:
        self._known: TtlCache[uuid.UUID, uuid.UUID | None] = TtlCache(ttl_s, max_entries)

    async def teams(
        self, source: asyncpg.Pool | asyncpg.Connection, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID | None]:
        """The team of every id that exists; unknown ids are absent from the answer."""
        now = time.monotonic()
        out: dict[uuid.UUID, uuid.UUID | None] = {}
        missing = []
        for rid in set(ids):
            team = self._known.get(rid, now)
            if team is MISSING:
                missing.append(rid)
            else:
                out[rid] = team  # type: ignore[assignment]
        if missing:
            rows = await source.fetch("SELECT id, team_id FROM responders WHERE id = ANY($1::uuid[])", missing)
            for row in rows:
                self._known.put(row["id"], row["team_id"], now)
                out[row["id"]] = row["team_id"]
        return out
