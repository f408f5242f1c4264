"""Per-worker cache of user rows, so guards can refuse deactivated users without a query per request.

An access token stays valid until it expires (15 minutes by default), but an admin who
deactivates a user expects that user to lose access now. Every guarded request therefore checks
the user's row, through this cache: a deactivated user is refused within ``ttl_s`` on every worker
and at once on the worker that deactivated them. ``/v1/me`` answers from the same rows.
"""

from __future__ import annotations

import uuid

import asyncpg

from ..ttlcache import MISSING, TtlCache
from . import repository as repo


class UserDirectory:
    def __init__(self, ttl_s: float = 5.0, max_entries: int = 50_000) -> None:
        self._cache: TtlCache[uuid.UUID, asyncpg.Record | None] = TtlCache(ttl_s, max_entries)

    async def get(self, pool: asyncpg.Pool, user_id: uuid.UUID) -> asyncpg.Record | None:
        """The user's row (id, username, display_name, email, role, team_id, is_active, created_at,
        responder_id), or None if there is no such user."""
        row = self._cache.get(user_id)
        if row is MISSING:
            async with pool.acquire() as conn:
                row = await repo.user_by_id(conn, user_id)
            self._cache.put(user_id, row)
        return row  # type: ignore[return-value]

    def forget(self, user_id: uuid.UUID | None = None) -> None:
        self._cache.forget(user_id)
