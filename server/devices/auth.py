"""Resolving a device from its token (and, for OsmAnd clients, its unique id).

Trackers report every few seconds, so lookups are cached per worker for minutes (``ttl_s``)
rather than queried per fix. A revocation must not wait that long: the worker that revokes
forgets the token at once and bumps a revocation epoch in Redis (:meth:`revoked`); every worker
reads the epoch each ``EPOCH_POLL_S`` (:meth:`watch`) and empties its cache when it moved, so a
revoked token stops working everywhere within about a second. While Redis cannot be read the
cache is emptied every poll, so revocations still take effect (at the price of a query per fix).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..errors import Unauthorized
from ..security import token_hash
from ..ttlcache import MISSING, TtlCache


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    device_id: uuid.UUID
    unique_id: str
    responder_id: uuid.UUID
    team_id: uuid.UUID | None


log = logging.getLogger("sitrep.devices")

EPOCH_KEY = "sitrep:devices:revocation-epoch"
EPOCH_POLL_S = 1.0
_UNREADABLE = b"\x00unreadable"


class DeviceAuthenticator:
    def __init__(self, ttl_s: float = 300.0, max_entries: int = 100_000) -> None:
        self._cache: TtlCache[str, DeviceIdentity | None] = TtlCache(ttl_s, max_entries)
        self._epoch: bytes | None = None

    async def watch(self, redis: Redis) -> None:
        """Run forever: empty the cache whenever any worker revoked a device."""
        while True:
            try:
                epoch = await redis.get(EPOCH_KEY)
            except (RedisError, OSError):
                if self._epoch is not _UNREADABLE:  # say it once per outage, not every poll
                    log.warning("device revocation epoch unreadable; not caching device tokens meanwhile")
                self._cache.forget()
                self._epoch = _UNREADABLE
            else:
                if epoch != self._epoch:
                    self._cache.forget()
                    self._epoch = epoch
            await asyncio.sleep(EPOCH_POLL_S)

    async def revoked(self, redis: Redis, token_digest: str | None) -> None:
        """A device was revoked or its responder moved team (``None``: forget all): here, and on every worker."""
        self.forget(token_digest)
        try:
            await redis.incr(EPOCH_KEY)
        except (RedisError, OSError):
            log.warning("could not publish a device revocation; other workers forget it within their TTL")

    async def resolve(self, conn_source: asyncpg.Pool | asyncpg.Connection, token: str) -> DeviceIdentity:
        digest = token_hash(token)
        identity = self._cache.get(digest)
        if identity is MISSING:
            row = await conn_source.fetchrow(
                "SELECT d.id, d.unique_id, d.responder_id, r.team_id FROM devices d "
                "JOIN responders r ON r.id = d.responder_id WHERE d.token_hash = $1 AND d.revoked_at IS NULL",
                digest,
            )
            identity = DeviceIdentity(row["id"], row["unique_id"], row["responder_id"], row["team_id"]) if row else None
            self._cache.put(digest, identity)
        if not isinstance(identity, DeviceIdentity):
            raise Unauthorized("unknown or revoked device token")
        return identity

    def forget(self, token_digest: str | None = None) -> None:
        self._cache.forget(token_digest)
