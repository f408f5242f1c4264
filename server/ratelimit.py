"""Rate limits kept in Redis so every worker counts together.

* per client address on the REST API: a fixed one-minute window counted locally and summed in Redis
  every quarter second (no Redis round trip on the request path);
* failed logins per account and per address: after ``login_max_failures`` (per account) or
  ``login_max_failures_per_address`` failures in the window each
  further attempt must wait a delay that doubles with every failure (5 s, 10 s, 20 s … capped at 15 min).

If Redis is unreachable the limits fail open (logged and counted) rather than taking the API down:
Redis only holds what can be rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .errors import TooManyRequests
from .observability import LOGIN_FAILURES, RATE_LIMITED

log = logging.getLogger("sitrep.ratelimit")

MAX_DELAY_S = 900
FLUSH_S = 0.25
FIRST_DELAY_S = 5


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        per_min: int,
        login_max_failures: int,
        login_window_s: int,
        login_max_failures_per_address: int = 30,
    ) -> None:
        self.redis = redis
        self.per_min = per_min
        self.login_max_failures = login_max_failures
        self.login_max_failures_per_address = login_max_failures_per_address
        self.login_window_s = login_window_s
        self._window = 0
        self._local: dict[str, int] = {}
        self._global: dict[str, int] = {}

    async def check_request(self, address: str) -> None:
        """Per-address limit shared by all workers without a Redis round trip per request.

        Each worker counts locally and a background flush (``flush_loop``) adds its counts to
        Redis every ``FLUSH_S`` and reads back the global totals, so the decision uses the global
        count as of the last flush plus this worker's unflushed requests.
        """
        if self.per_min <= 0:
            return
        window = int(time.time() // 60)
        if window != self._window:
            self._window, self._local, self._global = window, {}, {}
        count = self._local.get(address, 0) + 1
        self._local[address] = count
        if count + self._global.get(address, 0) > self.per_min:
            self._local[address] = count - 1
            raise TooManyRequests(
                f"more than {self.per_min} requests per minute from this address",
                retry_after_s=60 - time.time() % 60,
            )

    async def flush(self) -> None:
        window, pending = self._window, self._local
        if not pending:
            return
        self._local = {}
        try:
            pipe = self.redis.pipeline(transaction=False)
            for address, n in pending.items():
                key = f"sitrep:rl:req:{address}:{window}"
                pipe.incrby(key, n)
                pipe.expire(key, 61, nx=True)
            results = await pipe.execute()
        except RedisError:
            log.warning("rate limiter could not reach Redis; counting locally")
            for address, n in pending.items():
                self._global[address] = self._global.get(address, 0) + n
            return
        if window == self._window:
            for address, total in zip(pending, results[::2], strict=True):
                self._global[address] = int(total)

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self.flush()

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
                limit = self.login_max_failures if scope == "user" else self.login_max_failures_per_address
                excess = failures - limit
                if excess >= 0:
                    delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2**excess)
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
