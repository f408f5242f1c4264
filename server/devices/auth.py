"""Resolving a device from its token (and, for OsmAnd clients, its unique id).

Lookups are cached per worker for a few seconds because trackers report often; a revoked token
stops working within ``ttl_s`` everywhere, and at once on the worker that revoked it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg

from ..errors import Unauthorized
from ..security import token_hash


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    device_id: uuid.UUID
    unique_id: str
    responder_id: uuid.UUID
    team_id: uuid.UUID | None


class DeviceAuthenticator:
    def __init__(self, ttl_s: float = 5.0, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, DeviceIdentity | None]] = {}

    async def resolve(self, conn_source: asyncpg.Pool | asyncpg.Connection, token: str) -> DeviceIdentity:
        digest = token_hash(token)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            identity = hit[1]
        else:
            row = await conn_source.fetchrow(
                "SELECT d.id, d.unique_id, d.responder_id, r.team_id FROM devices d "
                "JOIN responders r ON r.id = d.responder_id WHERE d.token_hash = $1 AND d.revoked_at IS NULL",
                digest,
            )
            identity = DeviceIdentity(row["id"], row["unique_id"], row["responder_id"], row["team_id"]) if row else None
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[digest] = (now + self.ttl_s, identity)
        if identity is None:
            raise Unauthorized("unknown or revoked device token")
        return identity

    def forget(self, token_digest: str | None = None) -> None:
        if token_digest is None:
            self._cache.clear()
        else:
            self._cache.pop(token_digest, None)
