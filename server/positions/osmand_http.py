"""`/osmand` over HTTP: from a request's query, body and token to committed fixes.

:func:`receive_osmand` is the one implementation, used by two front ends:

* the Litestar route in :mod:`.ingest_controller` (registered for the OpenAPI schema, and
  answering whatever the fast path does not take);
* :func:`serve_osmand`, a pure-ASGI fast path that :func:`server.middleware.front_door` runs in
  front of Litestar for ``GET``/``POST /osmand`` (trackers send one fix per request, thousands per
  second: Litestar's router, exception layers, request, signature and response machinery cost about
  as much as the ingest itself). It runs behind the same :func:`server.middleware.sitrep_middleware`
  (request id, authentication, per-address rate limit, metrics under the route ``/osmand``) and
  answers with the same statuses and problem-details bodies.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import msgspec

from ..errors import InvalidInput, SitrepError, Unauthorized
from ..problems import problem_asgi_response
from . import osmand
from .fixes import Rejected
from .service import ingest_osmand

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

    from ..devices.auth import DeviceIdentity
    from ..runtime import Runtime

OSMAND_PATH = "/osmand"

log = logging.getLogger("sitrep.errors")


class UnknownDevice(SitrepError):
    """Traccar answers 400 for a device it does not know; so does sitrep."""

    status, title, type_slug = 400, "Unknown device", "unknown-device"


class RejectedFix(InvalidInput):
    """A fix the OsmAnd/Traccar protocol cannot carry into sitrep (malformed, impossible or future).

    The protocol knows only 200 and 400 (Traccar answers 400 to whatever it cannot decode), so this is a 400
    with the usual per-field reason, not the 422 the JSON API uses.
    """

    status, title, type_slug = 400, "Fix rejected", "fix-rejected"


class BodyTooLarge(SitrepError):
    """The body exceeds ``SITREP_MAX_BODY_BYTES`` (the same 413 problem Litestar's limit gives)."""

    status, title, type_slug = 413, "Request body too large", "payload-too-large"


class _ClientGone(Exception):
    """The client disconnected before its body arrived: nobody to answer."""


def query_fields(query_string: bytes) -> dict[str, str]:
    """The query's key/value fields, the first value of a repeated key winning (as Litestar's
    ``dict(request.query_params)``), blank values kept, ``%XX`` and ``+`` decoded."""
    text = query_string.decode("latin-1")
    fields: dict[str, str] = {}
    if "%" in text or "+" in text:
        for key, value in parse_qsl(text, keep_blank_values=True, separator="&"):
            fields.setdefault(key, value)
        return fields
    for part in text.split("&"):  # the usual tracker query: nothing to unquote
        if part:
            key, _, value = part.partition("=")
            fields.setdefault(key, value)
    return fields


def osmand_fixes(content_type: str, body: bytes, fields: dict[str, str]) -> tuple[str | None, list[osmand.OsmandFix]]:
    """The device id and fixes of a request: the JSON body variant, or key/value fields (the query,
    or a form body when the query holds nothing but the token). Raises the protocol's 400s."""
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


async def receive_osmand(
    rt: Runtime, query_string: bytes, content_type: str, body: bytes, bearer_token: str | None
) -> None:
    """Parse, authenticate (Bearer first, else the ``token`` field) and store; returns once committed."""
    fields = query_fields(query_string)
    unique_id, fixes = osmand_fixes(content_type, body, fields)
    identity = await authenticate_device(rt, bearer_token or fields.get("token"), unique_id)
    result = await ingest_osmand(rt, identity, fixes)
    if result.rejected:
        first = result.rejected[0]
        raise RejectedFix(first.detail, errors=[{"field": first.reason, "message": first.detail}])


# -- the pure-ASGI fast path -----------------------------------------------------------------------
_OK_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0"))


async def serve_osmand(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET``/``POST /osmand`` without Litestar (reached through the middleware, after authentication
    and the rate limit); the same answers as the Litestar route, every error as problem details."""
    rt: Runtime = scope["app"].state.runtime
    try:
        content_type, body = "", b""
        if scope["method"] == "POST":  # type: ignore[typeddict-item]
            content_type, body = await _read_body(scope, receive, rt.settings.server.max_body_bytes)
        await receive_osmand(rt, scope["query_string"], content_type, body, scope.get("device_token"))  # type: ignore[arg-type]
    except SitrepError as exc:
        await problem_asgi_response(exc, scope, send)
        return
    except _ClientGone:
        return
    except Exception:
        log.exception("unhandled error", extra={"path": scope["path"]})
        await problem_asgi_response(SitrepError("An unexpected error occurred; it was logged."), scope, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
    await send({"type": "http.response.body", "body": b""})  # type: ignore[arg-type]


async def _read_body(scope: Scope, receive: Receive, limit: int) -> tuple[str, bytes]:
    """The content type and the whole body; 413 as soon as it is announced or seen to exceed ``limit``."""
    content_type = ""
    for key, value in scope["headers"]:
        if key == b"content-type":
            content_type = value.decode("latin-1")
        elif key == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                continue
            if announced > limit:
                raise BodyTooLarge("Request Entity Too Large")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge("Request Entity Too Large")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return content_type, chunks[0] if len(chunks) == 1 else b"".join(chunks)
