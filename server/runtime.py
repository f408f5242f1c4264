"""The runtime: every long-lived thing a worker owns, started and stopped in one place.

The Litestar lifespan (see :mod:`server.app`) calls :meth:`Runtime.start` and :meth:`Runtime.stop`.
Areas that own background work (the ingest batcher, the stream hub, the fence evaluator, feed
leaders, the outbox dispatcher) register a :class:`Component`; components start in registration
order and stop in reverse, so nothing is left unowned.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from .auth.directory import UserDirectory
from .bus import ChangeBus
from .db import create_pool
from .devices.auth import DeviceAuthenticator
from .observability import POOL_SIZE
from .ratelimit import RateLimiter
from .settings import Settings

log = logging.getLogger("sitrep.runtime")


class Component(Protocol):
    name: str

    async def start(self, runtime: Runtime) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(self, settings: Settings, components: list[Component] | None = None) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.redis: aioredis.Redis = None  # type: ignore[assignment]
        self.rate_limiter: RateLimiter = None  # type: ignore[assignment]
        self.device_auth = DeviceAuthenticator()
        self.users = UserDirectory()
        self.bus = ChangeBus()
        self.components: list[Component] = list(components or [])
        self.by_name: dict[str, Any] = {c.name: c for c in self.components}
        self.ready = False
        self.shutting_down = False
        self._started: list[Component] = []
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, name: str) -> Any:
        return self.by_name[name]

    async def start(self) -> None:
        s = self.settings
        self.pool = await create_pool(s.db)
        self.redis = aioredis.from_url(
            s.redis.redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15
        )
        self.rate_limiter = RateLimiter(
            self.redis,
            per_min=s.server.rate_limit_per_min,
            login_max_failures=s.auth.login_max_failures,
            login_max_failures_per_address=s.auth.login_max_failures_per_address,
            login_window_s=s.auth.login_window_s,
        )
        for component in self.components:
            await component.start(self)
            self._started.append(component)
        self._tasks = [
            asyncio.create_task(self._pool_gauges(), name="pool-gauges"),
            asyncio.create_task(self.rate_limiter.flush_loop(), name="rate-limit-flush"),
            asyncio.create_task(self.device_auth.watch(self.redis), name="device-revocations"),
        ]
        self.ready = True
        log.info("runtime started", extra={"components": [c.name for c in self.components]})

    async def stop(self) -> None:
        self.ready = False
        self.shutting_down = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for component in reversed(self._started):
            try:
                await component.stop()
            except Exception:
                log.exception("component failed to stop", extra={"component": component.name})
        self._started.clear()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()
        log.info("runtime stopped")

    async def _pool_gauges(self) -> None:
        while True:
            POOL_SIZE.labels("total").set(self.pool.get_size())
            POOL_SIZE.labels("idle").set(self.pool.get_idle_size())
            await asyncio.sleep(5)
