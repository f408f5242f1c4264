"""`/v1/devices/stream`: a WebSocket for apps that keep a socket open. Fixes in, acks out.

Authenticate with the device token (``Authorization: Bearer`` or ``?token=``). Messages::

    → {"type": "fix", "fix_time": ..., "lon": ..., "lat": ..., "client_id": "a1", ...}
    → {"type": "fixes", "items": [{...}, ...]}
    ← {"type": "ack", "client_ids": ["a1"], "results": [{"client_id": "a1", "status": "stored"}]}
    ← {"type": "error", "reason": "...", "detail": "...", "client_id": "a2"}

An ack is sent only after the transaction holding the fixes committed. A socket may have a few
messages in flight at once; acks may arrive out of order (match them by ``client_id``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from ..deps import runtime_of
from ..errors import SitrepError
from .fixes import MAX_BATCH
from .service import Caller, ingest_items

log = logging.getLogger("sitrep.ingest.ws")

MAX_IN_FLIGHT = 8
_encode = msgspec.json.Encoder().encode


@websocket("/v1/devices/stream", tags=["positions"])
async def device_stream(socket: WebSocket[Any, Any, Any]) -> None:
    rt = runtime_of(socket)
    token = socket.scope.get("device_token") or socket.query_params.get("token")
    await socket.accept()
    try:
        if not token:
            raise SitrepError("a device token is required")
        device = await rt.device_auth.resolve(rt.pool, token)
    except SitrepError as exc:
        await socket.send_text(_encode({"type": "error", "reason": "unauthorized", "detail": exc.detail}).decode())
        await socket.close(code=1008, reason="unauthorized")
        return
    caller = Caller(device=device)
    send_lock = asyncio.Lock()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def send(message: dict[str, Any]) -> None:
        async with send_lock:
            await socket.send_text(_encode(message).decode())

    async def handle(items: list[Any]) -> None:
        try:
            raws = [msgspec.json.encode({k: v for k, v in i.items() if k != "type"}) for i in items]
            result = await ingest_items(rt, caller, raws, source="ws")
            if result.accepted:
                await send(
                    {
                        "type": "ack",
                        "client_ids": [a.client_id for a in result.accepted],
                        "results": [
                            {"client_id": a.client_id, "status": a.status, "flags": a.flags} for a in result.accepted
                        ],
                    }
                )
            for r in result.rejected:
                await send(
                    {
                        "type": "error",
                        "reason": r.reason,
                        "detail": r.detail,
                        "client_id": items[r.index].get("client_id"),
                    }
                )
        except SitrepError as exc:
            await send(
                {
                    "type": "error",
                    "reason": exc.type_slug,
                    "detail": exc.detail,
                    "retry_after_s": exc.retry_after_s,
                    "client_ids": [i.get("client_id") for i in items],
                }
            )
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            slots.release()

    try:
        while True:
            text = await socket.receive_text()
            try:
                message = msgspec.json.decode(text)
            except msgspec.DecodeError as exc:
                await send({"type": "error", "reason": "malformed_json", "detail": str(exc)})
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "fix":
                items = [message]
            elif kind == "fixes" and isinstance(message.get("items"), list):
                items = message["items"]
            else:
                await send({"type": "error", "reason": "unknown_message", "detail": "type must be fix or fixes"})
                continue
            if len(items) > MAX_BATCH or not all(isinstance(i, dict) for i in items):
                await send({"type": "error", "reason": "invalid_message", "detail": f"1..{MAX_BATCH} objects"})
                continue
            await slots.acquire()
            task = asyncio.create_task(handle(items))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except WebSocketDisconnect:
        pass
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
