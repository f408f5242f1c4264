"""HTTP ingest: `POST /v1/positions` (JSON array batch) and `GET|POST /osmand` (OsmAnd/Traccar)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post, route

from ..deps import runtime_of
from .osmand_http import receive_osmand
from .service import BatchResult, caller_for, decode_items, ingest_items


def device_token(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("device_token") or request.query_params.get("token")  # type: ignore[return-value]


class PositionIngestController(Controller):
    path = "/v1/positions"
    tags = ["positions"]

    @post(
        "/",
        status_code=200,
        summary="Post up to 1,000 fixes; each is stored, a duplicate, or rejected with a reason",
        description="Authenticate with a user access token (`positions:write`) or a device token "
        "(Bearer or `token` query parameter). Answered only after the fixes are committed.",
    )
    async def post_positions(self, request: Request[Any, Any, Any]) -> BatchResult:
        rt = runtime_of(request)
        caller = await caller_for(rt, request.scope.get("user"), device_token(request))
        return await ingest_items(rt, caller, decode_items(await request.body()))


@route(
    "/osmand",
    http_method=["GET", "POST"],
    tags=["positions"],
    summary="OsmAnd / Traccar Client live tracking (query, form or JSON body); requires the device token",
    status_code=200,
)
async def osmand_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    # GET/POST /osmand normally never get here: server.middleware.front_door hands them to
    # osmand_http.serve_osmand (the same receive_osmand, without Litestar's router and handler machinery).
    # This route documents /osmand and answers what the front door leaves (e.g. "/osmand/", CORS setups).
    body = await request.body() if request.method == "POST" else b""
    await receive_osmand(
        runtime_of(request),
        request.scope["query_string"],
        request.headers.get("content-type", ""),
        body,
        request.scope.get("device_token"),  # type: ignore[arg-type]
    )
    return Response(b"", status_code=200, media_type="text/plain")
