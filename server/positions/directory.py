"""Which responder ids exist (and their team), cached per worker for a short while.

Ingest checks every fix's responder; asking PostgreSQL per request would cost a round trip on
the hot path, so known ids are remembered for ``ttl_s`` and misses are looked up in one query.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

import asyncpg


class ResponderDirectory:
    def __init__(self, ttl_s: float = 30.0, max_entries: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._known: dict[uuid.UUID, tuple[float, uuid.UUID | None]] = {}

    async def teams(
        self, source: asyncpg.Pool | asyncpg.Connection, ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID | None]:
        """The team of every id that exists; unknown ids are absent from the answer."""
        now = time.monotonic()
        out: dict[uuid.UUID, uuid.UUID | None] = {}
        missing = []
        for rid in set(ids):
            hit = self._known.get(rid)
            if hit is not None and hit[0] > now:
                out[rid] = hit[1]
            else:
                missing.append(rid)
        if missing:
            rows = await source.fetch("SELECT id, team_id FROM responders WHERE id = ANY($1::uuid[])", missing)
            if len(self._known) + len(rows) > self.max_entries:
                self._known.clear()
            for row in rows:
                self._known[row["id"]] = (now + self.ttl_s, row["team_id"])
                out[row["id"]] = row["team_id"]
        return out
