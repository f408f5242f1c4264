"""Rate limits kept in Redis so every worker counts together.

* per client address on the REST API: a fixed one-minute window (`INCR` + `EXPIRE NX` in one round trip);
* failed logins per account and per address: after ``login_max_failures`` failures in the window each
  further attempt must wait a delay that doubles with every failure (1 s, 2 s, 4 s … capped at 15 min).

If Redis is unreachable the limits fail open (logged and counted) rather than taking the API down:
Redis only holds what can be rebuilt.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import TooManyRequests
from .observability import LOGIN_FAILURES, RATE_LIMITED

log = logging.getLogger("sitrep.ratelimit")

MAX_DELAY_S = 900


class RateLimiter:
    def __init__(
        self, redis: aioredis.Redis, *, per_min: int, login_max_failures: int, login_window_s: int
    ) -> None:
        self.redis = redis
        self.per_min = per_min
        self.login_max_failures = login_max_failures
        self.login_window_s = login_window_s

    async def check_request(self, address: str) -> None:
        if self.per_min <= 0:
            return
        window = int(time.time() // 60)
        key = f"sitrep:rl:req:{address}:{window}"
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 61, nx=True)
            count, _ = await pipe.execute()
        except RedisError:
            log.warning("rate limiter unavailable; failing open")
            return
        if count > self.per_min:
            raise TooManyRequests(
                f"more than {self.per_min} requests per minute from this address",
                retry_after_s=60 - time.time() % 60,
            )

    async def check_login(self, username: str, address: str) -> None:
        """Raise 429 if this account or address must still wait before another attempt."""
        try:
            values = await self.redis.mget(self._lock_key("user", username), self._lock_key("addr", address))
        except RedisError:
            return
        now = time.time()
        wait = max((float(v) - now for v in values if v is not None), default=0.0)
        if wait > 0:
            RATE_LIMITED.labels("login").inc()
            raise TooManyRequests("too many failed logins; wait before trying again", retry_after_s=wait)

    async def login_failed(self, username: str, address: str) -> None:
        LOGIN_FAILURES.inc()
        try:
            for scope, ident in (("user", username), ("addr", address)):
                key = f"sitrep:rl:loginfail:{scope}:{ident}"
                pipe = self.redis.pipeline(transaction=False)
                pipe.incr(key)
                pipe.expire(key, self.login_window_s)
                failures, _ = await pipe.execute()
                excess = failures - self.login_max_failures
                if excess >= 0:
                    delay = min(MAX_DELAY_S, 2**excess)
                    await self.redis.set(self._lock_key(scope, ident), time.time() + delay, ex=int(delay) + 1)
        except RedisError:
            log.warning("could not record failed login in Redis")

    async def login_succeeded(self, username: str, address: str) -> None:
        try:
            await self.redis.delete(
                f"sitrep:rl:loginfail:user:{username}",
                self._lock_key("user", username),
            )
        except RedisError:
            pass

    @staticmethod
    def _lock_key(scope: str, ident: str) -> str:
        return f"sitrep:rl:loginlock:{scope}:{ident}"
