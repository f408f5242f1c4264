"""`/health` never touches PostgreSQL or Redis; `/ready` checks both and the schema revision."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get

from ..deps import runtime_of
from ..maintenance import head_revision
from ..observability import metrics_payload

_HEAD: list[str] = []


def _head() -> str:
    if not _HEAD:
        _HEAD.append(head_revision())
    return _HEAD[0]


@get("/health", include_in_schema=True, tags=["ops"], summary="Process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def _check_db(request: Request[Any, Any, Any]) -> dict[str, Any]:
    rt = runtime_of(request)
    async with rt.pool.acquire(timeout=2) as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT version_num FROM alembic_version LIMIT 1) AS rev, postgis_lib_version() AS postgis"
        )
    rev = row["rev"]
    return {
        "postgres": "ok",
        "postgis": row["postgis"],
        "migrations": "current" if rev == _head() else f"at {rev}, head is {_head()}",
        "_ok": rev == _head(),
    }


async def _check_redis(request: Request[Any, Any, Any]) -> dict[str, Any]:
    await asyncio.wait_for(runtime_of(request).redis.ping(), timeout=2)
    return {"redis": "ok", "_ok": True}


@get("/ready", tags=["ops"], summary="PostgreSQL, PostGIS and Redis answer and migrations are at head")
async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    rt = runtime_of(request)
    body: dict[str, Any] = {}
    ok = rt.ready and not rt.shutting_down
    if not ok:
        body["runtime"] = "shutting down" if rt.shutting_down else "starting"
    for name, check in (("postgres", _check_db), ("redis", _check_redis)):
        try:
            result = await check(request)
            ok = ok and result.pop("_ok")
            body.update(result)
        except Exception as exc:
            ok = False
            body[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    body["status"] = "ready" if ok else "not ready"
    return Response(body, status_code=200 if ok else 503)


@get("/metrics", tags=["ops"], summary="Prometheus metrics", include_in_schema=True)
async def metrics() -> Response[bytes]:
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)


ops_handlers = [health, ready, metrics]
