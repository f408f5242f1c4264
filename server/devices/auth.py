"""Resolving a device from its token (and, for OsmAnd clients, its unique id).

Trackers report every few seconds, so lookups are cached per worker for minutes (``ttl_s``)
rather than queried per fix. A revocation must not wait that long: the worker that revokes
forgets the token at once and bumps a revocation epoch in Redis (:meth:`revoked`); every worker
reads the epoch each ``EPOCH_POLL_S`` (:meth:`watch`) and empties its cache when it moved, so a
revoked token stops working everywhere within about a second. While Redis cannot be read the
cache is emptied every poll, so revocations still take effect (at the price of a query per fix).

Misses of requests that arrive together (one event-loop turn) are looked up in one query.
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
_MEMO_TOKEN_CHARS = 128  # device tokens are ~40 characters


_LOOKUP_SQL = (
    "SELECT d.token_hash, d.id, d.unique_id, d.responder_id, r.team_id FROM devices d "
    "JOIN responders r ON r.id = d.responder_id WHERE d.token_hash = ANY($1::text[]) AND d.revoked_at IS NULL"
)


class _Lookup:
    """Token digests that missed the cache in the same event-loop turn, and the one query for them."""

    __slots__ = ("digests", "task")

    def __init__(self) -> None:
        self.digests: set[str] = set()
        self.task: asyncio.Future[dict[str, DeviceIdentity]] | None = None


class DeviceAuthenticator:
    def __init__(self, ttl_s: float = 300.0, max_entries: int = 100_000) -> None:
        self._cache: TtlCache[str, DeviceIdentity | None] = TtlCache(ttl_s, max_entries)
        # token -> its digest (a pure function, memoised: trackers send the same token every few seconds).
        # Revocation is unaffected: identities stay keyed by digest in the TTL cache above.
        self._digests: dict[str, str] = {}
        self._max_digests = max_entries
        self._epoch: bytes | None = None
        self._lookup: _Lookup | None = None

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
        digest = self._digests.get(token)
        if digest is None:
            digest = token_hash(token)
            if len(token) <= _MEMO_TOKEN_CHARS:  # bounded memory whatever callers send
                if len(self._digests) >= self._max_digests:
                    self._digests.clear()
                self._digests[token] = digest
        identity = self._cache.get(digest)
        if identity is MISSING:
            if isinstance(conn_source, asyncpg.Pool):
                identity = await self._look_up(conn_source, digest)
            else:
                found = await self._query(conn_source, [digest])
                identity = found.get(digest)
                self._cache.put(digest, identity)
        if not isinstance(identity, DeviceIdentity):
            raise Unauthorized("unknown or revoked device token")
        return identity

    async def _look_up(self, pool: asyncpg.Pool, digest: str) -> DeviceIdentity | None:
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = _Lookup()
            lookup.task = asyncio.ensure_future(self._run(pool, lookup))
        lookup.digests.add(digest)
        assert lookup.task is not None
        # Shielded: a request that goes away must not cancel the others' lookup.
        found = await asyncio.shield(lookup.task)
        return found.get(digest)

    async def _run(self, pool: asyncpg.Pool, lookup: _Lookup) -> dict[str, DeviceIdentity]:
        await asyncio.sleep(0)  # the requests of this loop turn add their digests
        self._lookup = None
        digests = list(lookup.digests)
        found = await self._query(pool, digests)
        for digest in digests:
            self._cache.put(digest, found.get(digest))
        return found

    @staticmethod
    async def _query(source: asyncpg.Pool | asyncpg.Connection, digests: list[str]) -> dict[str, DeviceIdentity]:
        rows = await source.fetch(_LOOKUP_SQL, digests)
        return {
            row["token_hash"]: DeviceIdentity(row["id"], row["unique_id"], row["responder_id"], row["team_id"])
            for row in rows
        }

    def forget(self, token_digest: str | None = None) -> None:
        self._cache.forget(token_digest)
