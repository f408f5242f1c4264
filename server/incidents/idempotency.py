"""``Idempotency-Key`` for mutations, and the transaction wrapper every mutating handler uses.

The key is claimed by inserting it (per user) in the same transaction as the change: a concurrent
request with the same key waits on the unique index until the first commits, then replays its
stored response. A stored key with a different request (method, path, body) is refused with 422.
Failed requests store nothing (their transaction rolls back), so they can be retried as they are.
Changes are published on the bus only after the commit, and never on a replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from ..deps import principal_of, runtime_of
from ..errors import InvalidInput
from ..security import Principal
from .scope import Work

MAX_KEY_LEN = 200
Mutation = Callable[[Work], Awaitable[tuple[Any, int]]]


def request_hash(method: str, path: str, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _owner(principal: Principal) -> Any:
    return principal.id


async def claim(
    conn: asyncpg.Connection, principal: Principal, key: str, digest: str, ttl_s: int
) -> tuple[int, Any] | None:
    """Claim ``key``; returns the stored ``(status, response)`` to replay, or None to go ahead."""
    if not key or len(key) > MAX_KEY_LEN:
        raise InvalidInput(
            "invalid Idempotency-Key", errors=[{"field": "Idempotency-Key", "message": f"1-{MAX_KEY_LEN} characters"}]
        )
    # an expired key is forgotten, so it may be used again
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)",
        _owner(principal),
        key,
        float(ttl_s),
    )
    inserted = await conn.fetchval(
        "INSERT INTO idempotency_keys (key, user_id, request_hash, status_code, response) VALUES ($1, $2, $3, 0, 'null') "
        "ON CONFLICT (user_id, key) DO NOTHING RETURNING true",
        key,
        _owner(principal),
        digest,
    )
    if inserted:
        return None
    stored = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE user_id = $1 AND key = $2",
        _owner(principal),
        key,
    )
    if stored is None or stored["request_hash"] != digest:
        raise InvalidInput(
            "this Idempotency-Key was used with a different request",
            errors=[{"field": "Idempotency-Key", "message": "reused with a different request"}],
        )
    return int(stored["status_code"]), stored["response"]


async def store(conn: asyncpg.Connection, principal: Principal, key: str, status: int, response: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE user_id = $1 AND key = $2",
        _owner(principal),
        key,
        status,
        response,
    )


async def mutate(request: Request[Any, Any, Any], mutation: Mutation) -> Response[Any]:
    """Run ``mutation`` in one transaction (with the key when given); publish its changes after commit."""
    runtime = runtime_of(request)
    principal = principal_of(request)
    key = request.headers.get("idempotency-key")
    digest = request_hash(request.method, request.url.path, await request.body()) if key is not None else ""
    async with runtime.pool.acquire() as conn:
        async with conn.transaction():
            if key is not None:
                replay = await claim(conn, principal, key, digest, runtime.settings.incidents.idempotency_ttl_s)
                if replay is not None:
                    return Response(replay[1], status_code=replay[0], headers={"Idempotent-Replayed": "true"})
            work = Work(conn, principal, runtime.settings)
            result, status = await mutation(work)
            content = msgspec.to_builtins(result)
            if key is not None:
                await store(conn, principal, key, status, content)
    runtime.bus.publish(list(work.changes.values()))
    return Response(content, status_code=status)


async def read(request: Request[Any, Any, Any], query: Callable[[Work], Awaitable[Any]]) -> Any:
    """Run a read in a connection from the pool (no transaction)."""
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn:
        return await query(Work(conn, principal_of(request), runtime.settings))
