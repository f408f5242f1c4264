"""HTTP ingest: `POST /v1/positions` (JSON array batch) and `GET|POST /osmand` (OsmAnd/Traccar)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Controller, Request, Response, post, route

from ..deps import runtime_of
from ..devices.auth import DeviceIdentity
from ..errors import InvalidInput, SitrepError, Unauthorized
from ..runtime import Runtime
from . import osmand
from .fixes import Rejected
from .service import BatchResult, caller_for, decode_items, ingest_items, ingest_osmand


class UnknownDevice(SitrepError):
    """Traccar answers 400 for a device it does not know; so does sitrep."""

    status, title, type_slug = 400, "Unknown device", "unknown-device"


class RejectedFix(InvalidInput):
    """A fix the OsmAnd/Traccar protocol cannot carry into sitrep (malformed, impossible or future).

    The protocol knows only 200 and 400 (Traccar answers 400 to whatever it cannot decode), so this is a 400
    with the usual per-field reason, not the 422 the JSON API uses.
    """

    status, title, type_slug = 400, "Fix rejected", "fix-rejected"


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


async def authenticate_device(rt: Runtime, token: str | None, unique_id: str | None) -> DeviceIdentity:
    """The token must belong to the device named in the request (a device id is not a credential)."""
    if unique_id is None:
        raise UnknownDevice("id (device id) is required")
    identity = None
    if token:
        try:
            identity = await rt.device_auth.resolve(rt.pool, token)
        except Unauthorized:
            identity = None
    if identity is not None and identity.unique_id == unique_id:
        return identity
    exists = await rt.pool.fetchval("SELECT 1 FROM devices WHERE unique_id = $1", unique_id)
    if not exists:
        raise UnknownDevice(f"unknown device {unique_id!r}")
    if not token:
        raise Unauthorized("the device token is required (token parameter or Bearer header)")
    raise Unauthorized("the token is unknown, revoked, or belongs to another device")


async def _osmand_fixes(
    request: Request[Any, Any, Any], fields: dict[str, str]
) -> tuple[str | None, list[osmand.OsmandFix]]:
    content_type = request.headers.get("content-type", "")
    body = await request.body() if request.method == "POST" else b""
    if "application/json" in content_type and body:
        try:
            document = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise RejectedFix("malformed JSON", errors=[{"field": "body", "message": str(exc)}]) from exc
        try:
            unique_id, fixes = osmand.parse_json(document)
        except Rejected as exc:
            if exc.reason == "missing_device":
                raise UnknownDevice(exc.detail) from exc
            raise RejectedFix(exc.detail, errors=[{"field": "location", "message": exc.detail}]) from exc
        return unique_id, fixes
    if body and not (set(fields) - {"token"}):
        fields.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return osmand.device_of(fields), [osmand.parse_fields(fields)]
    except Rejected as exc:
        if exc.reason == "missing_device":
            raise UnknownDevice(exc.detail) from exc
        raise RejectedFix(exc.detail, errors=[{"field": exc.reason, "message": exc.detail}]) from exc


@route(
    "/osmand",
    http_method=["GET", "POST"],
    tags=["positions"],
    summary="OsmAnd / Traccar Client live tracking (query, form or JSON body); requires the device token",
    status_code=200,
)
async def osmand_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    rt = runtime_of(request)
    fields = dict(request.query_params)
    unique_id, fixes = await _osmand_fixes(request, fields)
    token = request.scope.get("device_token") or fields.get("token")
    identity = await authenticate_device(rt, token, unique_id)  # type: ignore[arg-type]
    result = await ingest_osmand(rt, identity, fixes)
    if result.rejected:
        first = result.rejected[0]
        raise RejectedFix(first.detail, errors=[{"field": first.reason, "message": first.detail}])
    return Response(b"", status_code=200, media_type="text/plain")
