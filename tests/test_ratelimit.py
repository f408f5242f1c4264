"""The Redis-backed limiters on their own (real Redis, no server), with small limits."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from server.errors import TooManyRequests
from server.ratelimit import RateLimiter
from tests.conftest import RedisServer


async def test_address_lockout_needs_more_failures_than_account_lockout(redis_server: RedisServer) -> None:
    r = aioredis.from_url(redis_server.url)
    try:
        limiter = RateLimiter(r, per_min=0, login_max_failures=2, login_window_s=60, login_max_failures_per_address=5)
        address = f"10.9.{uuid.uuid4().int % 250}.1"
        # Two accounts, two failures each: each account is locked, the shared address is not yet.
        for user in ("ann", "bob"):
            for _ in range(2):
                await limiter.check_login(f"{user}-{address}", address)
                await limiter.login_failed(f"{user}-{address}", address)
            with pytest.raises(TooManyRequests) as locked:
                await limiter.check_login(f"{user}-{address}", address)
            assert locked.value.retry_after_s and locked.value.retry_after_s >= 4
        await limiter.check_login(f"carol-{address}", address)
        # A fifth failure from the address locks every account there.
        await limiter.login_failed(f"carol-{address}", address)
        with pytest.raises(TooManyRequests):
            await limiter.check_login(f"dave-{address}", address)
    finally:
        await r.aclose()


async def test_request_limit_is_shared_through_redis(redis_server: RedisServer) -> None:
    r = aioredis.from_url(redis_server.url)
    try:
        a = RateLimiter(r, per_min=10, login_max_failures=5, login_window_s=60)
        b = RateLimiter(r, per_min=10, login_max_failures=5, login_window_s=60)
        address = f"addr-{uuid.uuid4().hex}"
        for _ in range(6):
            await a.check_request(address)
        await a.flush()
        await b.check_request(address)
        await b.flush()  # every worker flushes every quarter second and learns the global count
        for _ in range(3):
            await b.check_request(address)
        with pytest.raises(TooManyRequests) as limited:
            await b.check_request(address)
        assert limited.value.retry_after_s is not None and limited.value.retry_after_s > 0
    finally:
        await r.aclose()
