"""`/v1/me/notifications`: the calling responder's hazard and assignment notifications."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK

from ..deps import principal_of, runtime_of
from ..permissions import requires
from . import service
from .repository import Notification
from .service import NotificationPage


class NotificationController(Controller):
    path = "/v1/me/notifications"
    tags = ["notifications"]

    @get("/", guards=[requires("me:read")], summary="My notifications, newest first")
    async def list_mine(
        self, request: Request[Any, Any, Any], limit: int = 50, cursor: str | None = None, unread: bool = False
    ) -> NotificationPage:
        p = principal_of(request)
        return await service.list_mine(runtime_of(request).pool, p, limit=limit, cursor=cursor, unread=unread)

    @post("/{notification_id:uuid}/read", status_code=HTTP_200_OK, guards=[requires("me:read")], summary="Mark read")
    async def mark_read(self, request: Request[Any, Any, Any], notification_id: uuid.UUID) -> Notification:
        return await service.mark_read(runtime_of(request).pool, principal_of(request), notification_id)
