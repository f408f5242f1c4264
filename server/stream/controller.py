"""`GET /v1/stream` (WebSocket) and `GET /v1/stream/sse` (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, WebSocket, get, websocket
from litestar.response import Stream
from websockets.protocol import OPEN

from ..deps import runtime_of
from ..errors import Forbidden, InvalidInput, SitrepError, Unauthorized
from ..permissions import allowed
from ..security import Principal, decode_access_token
from .hub import StreamHub
from .protocol import StreamError, parse_subscribe
from .scope import check_topics
from .viewer import Frame, Viewer, ViewerClosed

log = logging.getLogger("sitrep.stream")

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403


def _hub(connection: Any) -> StreamHub:
    return runtime_of(connection).get("stream")  # type: ignore[no-any-return]


@websocket("/v1/stream", name="stream")
async def stream_ws(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    principal = socket.scope.get("user")
    error = socket.scope.get("auth_error")  # type: ignore[typeddict-item]
    if error is not None or not isinstance(principal, Principal):
        reason = error.detail if isinstance(error, SitrepError) else "authentication required"
        await socket.close(code=CLOSE_UNAUTHORIZED, reason=reason[:120])
        return
    if not allowed(principal.role, "stream:read"):
        await socket.close(code=CLOSE_FORBIDDEN, reason="role may not read the stream")
        return
    hub = _hub(socket)
    viewer = hub.connect(principal, "ws")
    viewer.writer = _direct_writer(socket.send)
    receiver = asyncio.create_task(_receive(socket, hub, viewer))
    try:
        await _send(socket, viewer)
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
        hub.disconnect(viewer)


async def _receive(socket: WebSocket[Any, Any, Any], hub: StreamHub, viewer: Viewer) -> None:
    while True:
        event = await socket.receive()
        if event["type"] == "websocket.disconnect":
            viewer.close(1000, "client closed")
            return
        raw = event.get("text")
        if raw is None:
            raw = event.get("bytes") or b""
        await hub.handle(viewer, raw)


async def _send(socket: WebSocket[Any, Any, Any], viewer: Viewer) -> None:
    send = socket.send
    try:
        while True:
            for frame in await viewer.next_frames():
                await send({"type": "websocket.send", "text": frame.text})
            viewer.sent()
    except ViewerClosed as closed:
        if closed.code != 1000 or closed.reason != "client closed":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.close(code=closed.code, reason=closed.reason), 5)
    except Exception as exc:
        log.info("stream send failed", extra={"error": repr(exc)})
        viewer.close(1011, "send failed")


def _direct_writer(send: Any) -> Any:
    """A synchronous writer of text frames straight to uvicorn's sans-I/O WebSocket protocol under
    ``send`` (found through the ASGI send wrappers), or None when the server is another one. It
    writes only while the transport is not paused (below its high-water mark), the connection is
    open and no close was sent; otherwise it says False and the frame takes the queued path."""
    proto = _protocol_under(send)
    if proto is None:
        return None
    conn, transport, writable = proto.conn, proto.transport, proto.writable
    # Without extensions (permessage-deflate is per connection) a frame's bytes are the same for
    # every viewer: built once (Frame.ws_frame), written as they are.
    shared = not getattr(conn, "extensions", None)

    def write(frame: Frame) -> bool:
        if proto.disconnected or proto.close_sent or not writable.is_set() or transport.is_closing():
            return False
        if shared and conn.state is OPEN:
            transport.write(frame.ws_frame())
        else:
            conn.send_text(frame.text.encode())
            transport.write(b"".join(conn.data_to_send()))
        return True

    return write


def _protocol_under(send: Any, depth: int = 8) -> Any:
    """The uvicorn ``WebSocketsSansIOProtocol`` whose ``send`` the ASGI wrappers close over, if any."""
    stack, seen = [(send, 0)], set()
    while stack:
        fn, d = stack.pop()
        if id(fn) in seen or d > depth:
            continue
        seen.add(id(fn))
        owner = getattr(fn, "__self__", None)
        if type(owner).__name__ == "WebSocketsSansIOProtocol" and all(
            hasattr(owner, a) for a in ("conn", "transport", "writable", "disconnected", "close_sent")
        ):
            return owner
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value):
                stack.append((value, d + 1))
    return None


def _sse_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("user")
    if isinstance(principal, Principal):
        return principal
    token = request.query_params.get("access_token")
    if token:
        return decode_access_token(runtime_of(request).settings.auth.jwt_secret, token)
    raise Unauthorized("authentication required (Bearer header or access_token)")


@get("/v1/stream/sse", name="stream-sse", tags=["stream"], summary="Live map stream as Server-Sent Events")
async def stream_sse(
    request: Request[Any, Any, Any],
    topics: str,
    bbox: str | None = None,
    cells: str | None = None,
    max_rate_hz: float | None = None,
    encoding: str | None = None,
) -> Stream:
    """The same events as the WebSocket (`snapshot`, `delta`, `heartbeat`, `resumed`, `error`), one
    subscription per request. Resume with `Last-Event-ID: <epoch>:<seq>`. `encoding=compact` sends
    positions in the compact form (docs/stream.md)."""
    principal = _sse_principal(request)
    if not allowed(principal.role, "stream:read"):
        raise Forbidden("role may not read the stream")
    hub = _hub(request)
    sub = _sse_subscription(request, hub, topics, bbox, cells, max_rate_hz, encoding)
    try:
        check_topics(principal, sub.topics, sub.id)
    except StreamError as exc:
        raise Forbidden(exc.message, extra={"code": exc.code}) from None
    viewer = hub.connect(principal, "sse")
    return Stream(
        _sse_events(hub, viewer, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse_subscription(
    request: Request[Any, Any, Any],
    hub: StreamHub,
    topics: str,
    bbox: str | None,
    cells: str | None,
    max_rate_hz: float | None,
    encoding: str | None = None,
) -> Any:
    msg: dict[str, Any] = {"type": "subscribe", "id": "sse", "topics": topics}
    if encoding is not None:
        msg["encoding"] = encoding
    if bbox is not None:
        msg["bbox"] = bbox
    if cells is not None:
        msg["cells"] = [c for c in cells.split(",") if c]
    if max_rate_hz is not None:
        msg["max_rate_hz"] = max_rate_hz
    last = request.headers.get("last-event-id")
    if last and ":" in last:
        epoch, _, seq = last.rpartition(":")
        if seq.isdigit():
            msg["epoch"], msg["from_seq"] = epoch, int(seq)
    try:
        return parse_subscribe(msg, hub.settings)
    except StreamError as exc:
        field = {"unknown_topic": "topics", "invalid_area": "bbox", "area_too_large": "bbox"}.get(exc.code, "query")
        if "encoding" in exc.message:
            field = "encoding"
        if cells is not None and field == "bbox":
            field = "cells"
        raise InvalidInput(exc.message, errors=[{"field": field, "message": exc.message}]) from None


async def _sse_events(hub: StreamHub, viewer: Viewer, sub: Any) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        try:
            await hub.subscribe(viewer, sub)
        except StreamError as exc:
            yield f"event: error\ndata: {_json(exc.to_message())}\n\n"
            return
        while True:
            try:
                frames = await viewer.next_frames()
            except ViewerClosed as closed:
                yield f"event: close\ndata: {_json({'code': closed.code, 'reason': closed.reason})}\n\n"
                return
            yield "".join(_sse(frame, hub.epoch) for frame in frames)
    finally:
        hub.disconnect(viewer)


def _sse(frame: Frame, epoch: str) -> str:
    event = "message" if frame.event == "control" else frame.event
    head = f"id: {epoch}:{frame.seq}\n" if frame.seq is not None and frame.event in ("delta", "snapshot") else ""
    return f"{head}event: {event}\ndata: {frame.text}\n\n"


def _json(obj: Any) -> str:
    from .ticks import message

    return message(obj)


stream_handlers = [stream_ws, stream_sse]
