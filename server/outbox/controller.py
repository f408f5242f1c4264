"""`/v1/webhooks`: registration, filters, deliveries and redelivery (admins write, staff read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from .. import audit
from ..deps import check_limit, decode_cursor, encode_cursor, principal_of, runtime_of
from ..errors import InvalidInput, NotFound
from ..permissions import requires
from ..structs import Body
from . import repository as repo
from .webhook import check_url, new_secret, valid_secret

DETECTS = ("enter", "exit", "inside", "outside", "dwell")
STATUSES = ("pending", "retrying", "delivered", "dead")


class WebhookFilter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fences: list[str] = []
    """Fence or hazard ids (empty: all)."""
    hazard_kinds: list[str] = []
    """Hazard kinds, e.g. ``flood`` (empty: all; geofence events pass only when this is empty)."""
    detects: list[str] = []
    """Detect names (empty: all)."""


class Webhook(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    url: str
    filter: WebhookFilter
    active: bool
    exercise: bool
    created_at: datetime
    secret: str | None = None
    """Only returned when created (or rotated)."""


class WebhookPage(msgspec.Struct, kw_only=True):
    items: list[Webhook]
    next_cursor: str | None


class WebhookCreate(Body):
    url: str
    secret: str | None = None
    """``whsec_`` + base64 of 24–64 random bytes; generated when omitted."""
    filter: WebhookFilter = msgspec.field(default_factory=WebhookFilter)
    active: bool = True
    exercise: bool = False


class WebhookUpdate(Body):
    url: str | None = None
    secret: str | None = None
    filter: WebhookFilter | None = None
    active: bool | None = None


class Delivery(msgspec.Struct, kw_only=True):
    id: int
    message_id: str
    status: str
    attempts: int
    next_try_at: datetime
    last_error: str | None
    provider_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class DeliveryPage(msgspec.Struct, kw_only=True):
    items: list[Delivery]
    next_cursor: str | None


def _webhook(row: asyncpg.Record, secret: str | None = None) -> Webhook:
    d = dict(row)
    d["filter"] = msgspec.convert(d["filter"] or {}, WebhookFilter)
    return Webhook(**d, secret=secret)


def _delivery(row: asyncpg.Record) -> Delivery:
    d = dict(row)
    d.pop("channel", None)
    d.pop("target", None)
    return Delivery(**d)


async def _validate(
    request: Request[Any, Any, Any], url: str | None, secret: str | None, flt: WebhookFilter | None
) -> None:
    settings = runtime_of(request).settings
    errors: list[dict[str, str]] = []
    if url is not None:
        why = await check_url(
            url,
            allow_private=settings.fences.webhook_allow_private,
            own_hosts={settings.server.host.lower(), "localhost"},
        )
        if why:
            errors.append({"field": "url", "message": why})
    if secret is not None and not valid_secret(secret):
        errors.append({"field": "secret", "message": "must be 'whsec_' + base64 of 24-64 bytes"})
    if flt is not None:
        bad = sorted(set(flt.detects) - set(DETECTS))
        if bad:
            errors.append(
                {"field": "filter.detects", "message": f"unknown detect names {bad}; allowed: {list(DETECTS)}"}
            )
    if errors:
        raise InvalidInput("invalid webhook", errors=errors)


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post("/", guards=[requires("webhooks:write")])
    async def create_webhook(self, request: Request[Any, Any, Any], data: WebhookCreate) -> Webhook:
        await _validate(request, data.url, data.secret, data.filter)
        secret = data.secret or new_secret()
        principal = principal_of(request)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            row = await repo.create_webhook(
                conn, url=data.url, secret=secret, filter_=msgspec.to_builtins(data.filter),
                active=data.active, exercise=data.exercise, created_by=principal.id if principal.kind == "user" else None,
            )  # fmt: skip
            await audit.record(conn, principal, "webhook.create", "webhook", row["id"], {"url": data.url})
        return _webhook(row, secret)

    @get("/", guards=[requires("webhooks:read")])
    async def list_webhooks(
        self, request: Request[Any, Any, Any], limit: int = 100, cursor: str | None = None
    ) -> WebhookPage:
        check_limit(limit)
        after = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            rows = await repo.list_webhooks(conn, limit=limit + 1, after=after[0] if after else None)
        items = [_webhook(r) for r in rows[:limit]]
        return WebhookPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)

    @get("/{webhook_id:uuid}", guards=[requires("webhooks:read")])
    async def get_webhook(self, request: Request[Any, Any, Any], webhook_id: uuid.UUID) -> Webhook:
        async with runtime_of(request).pool.acquire() as conn:
            row = await repo.get_webhook(conn, webhook_id)
        if row is None:
            raise NotFound("no such webhook")
        return _webhook(row)

    @patch("/{webhook_id:uuid}", guards=[requires("webhooks:write")])
    async def update_webhook(
        self, request: Request[Any, Any, Any], webhook_id: uuid.UUID, data: WebhookUpdate
    ) -> Webhook:
        await _validate(request, data.url, data.secret, data.filter)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        if "filter" in changes:
            changes["filter"] = msgspec.to_builtins(data.filter)
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            row = await repo.update_webhook(conn, webhook_id, changes)
            if row is None:
                raise NotFound("no such webhook")
            await audit.record(
                conn, principal_of(request), "webhook.update", "webhook", webhook_id, {"fields": sorted(changes)}
            )
        return _webhook(row, data.secret)

    @delete("/{webhook_id:uuid}", guards=[requires("webhooks:write")], status_code=HTTP_204_NO_CONTENT)
    async def delete_webhook(self, request: Request[Any, Any, Any], webhook_id: uuid.UUID) -> None:
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            if not await repo.delete_webhook(conn, webhook_id):
                raise NotFound("no such webhook")
            await audit.record(conn, principal_of(request), "webhook.delete", "webhook", webhook_id)

    @get("/{webhook_id:uuid}/deliveries", guards=[requires("webhooks:read")])
    async def list_deliveries(
        self, request: Request[Any, Any, Any], webhook_id: uuid.UUID, status: str | None = None,
        limit: int = 100, cursor: str | None = None,
    ) -> DeliveryPage:  # fmt: skip
        check_limit(limit)
        if status is not None and status not in STATUSES:
            raise InvalidInput("invalid status", errors=[{"field": "status", "message": f"one of {list(STATUSES)}"}])
        before = decode_cursor(cursor, 1)
        async with runtime_of(request).pool.acquire() as conn:
            if await repo.get_webhook(conn, webhook_id) is None:
                raise NotFound("no such webhook")
            rows = await repo.list_deliveries(
                conn, webhook_id, status=status, limit=limit + 1, before=int(before[0]) if before else None
            )
        items = [_delivery(r) for r in rows[:limit]]
        return DeliveryPage(items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None)

    @post(
        "/{webhook_id:uuid}/deliveries/{delivery_id:int}/redeliver",
        guards=[requires("webhooks:write")],
        status_code=HTTP_202_ACCEPTED,
    )
    async def redeliver(self, request: Request[Any, Any, Any], webhook_id: uuid.UUID, delivery_id: int) -> Delivery:
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            row = await repo.redeliver(conn, webhook_id, delivery_id)
            if row is None:
                raise NotFound("no such delivery")
            await audit.record(conn, principal_of(request), "webhook.redeliver", "outbox", delivery_id)
        return _delivery(row)
