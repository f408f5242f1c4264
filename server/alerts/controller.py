"""`/v1/alerts` (compose, preview, approve, send, CAP, Atom, receipts) and `/v1/subscribers` (public)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from geo.geometry import to_geojson

from ..bus import Change
from ..deps import (
    check_limit,
    client_address,
    decode_cursor,
    decode_time_id_cursor,
    encode_cursor,
    principal_of,
    runtime_of,
)
from ..errors import Forbidden, InvalidInput, NotFound, Unauthorized
from ..permissions import allowed, requires
from ..security import Principal
from . import delivery, service
from . import repository as repo
from .cap import ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE, build_atom
from .messages import check_unsubscribe_token
from .model import Alert, AlertCompose, AlertPage, AlertPatch, CorrectIn, is_exercise
from .preview import Preview, preview
from .push import VapidKeys
from .senders import twilio_signature
from .subscribers import SubscriberCreate, SubscriberCreated, check_signup_rate, confirm, sign_up, unsubscribe

PUBLIC_STATUSES = ("sent", "superseded", "cancelled")


class SendOut(msgspec.Struct, kw_only=True):
    alert: Alert
    exercise: bool
    deliveries: dict[str, int]


class DeliveriesOut(msgspec.Struct, kw_only=True):
    alert_id: uuid.UUID
    identifier: str
    version: int
    exercise: bool
    counts: dict[str, int]
    by_channel: dict[str, dict[str, int]]
    items: list[dict[str, Any]]
    next_cursor: str | None


class ApproveIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    send: bool = False


def _uuid(ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(ref)
    except ValueError:
        raise NotFound("no such alert") from None


def to_alert(row: Any, base_url: str) -> Alert:
    content = row["content"]
    area = repo.area_of(row)
    return Alert(
        id=row["id"],
        identifier=row["identifier"],
        sender=row["sender"],
        status=row["status"],
        cap_status=row["cap_status"],
        exercise=is_exercise(row["cap_status"]),
        msg_type=row["msg_type"],
        version=int(content["version"]),
        thread_id=uuid.UUID(content["thread_id"]),
        references=list(row["references"]),
        supersedes_id=row["supersedes_id"],
        content=content,
        area=to_geojson(area) if area is not None else None,
        area_extra_m2=float(content.get("area_extra_m2", 0.0)),
        area_simplified=bool(content.get("area_simplified", False)),
        sent_at=row["sent_at"],
        effective=row["effective"],
        expires=row["expires"],
        created_by=row["created_by"],
        approved_by=row["approved_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        cap_url=f"{base_url}/v1/alerts/{row['id']}.cap",
    )


def _announce(request: Request[Any, Any, Any], row: Any) -> None:
    a = to_alert(row, "")
    runtime_of(request).bus.publish(
        Change(
            topic="alerts",
            key=str(a.id),
            data={
                "id": str(a.id),
                "status": a.status,
                "msg_type": a.msg_type,
                "exercise": a.exercise,
                "headline": a.content["texts"][0]["headline"],
                "cap_status": a.cap_status,
            },
            public=a.status in PUBLIC_STATUSES,
        )
    )


class AlertController(Controller):
    path = "/v1/alerts"
    tags = ["alerts"]

    @post("/", guards=[requires("alerts:compose")], status_code=HTTP_201_CREATED)
    async def compose(self, request: Request[Any, Any, Any], data: AlertCompose) -> Alert:
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.compose(conn, principal_of(request), data, rt.settings)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @get("/", guards=[requires("alerts:read")])
    async def list_alerts(
        self, request: Request[Any, Any, Any], limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> AlertPage:
        check_limit(limit, 500)
        after = decode_time_id_cursor(cursor)
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn:
            rows = await repo.list_alerts(conn, limit=limit + 1, after=after, status=status)
        items = [to_alert(r, rt.settings.alerts.alerts_public_url) for r in rows[:limit]]
        nxt = encode_cursor(items[-1].created_at.isoformat(), items[-1].id) if len(rows) > limit else None
        return AlertPage(items=items, next_cursor=nxt, exercise_present=any(i.exercise for i in items))

    @post("/sms-status", status_code=HTTP_200_OK, include_in_schema=True)
    async def sms_status(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Delivery receipts from the SMS providers (Twilio-style form post, signed with the token)."""
        rt = runtime_of(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        s = rt.settings.alerts
        url = f"{s.alerts_public_url}/v1/alerts/sms-status"
        if request.headers.get("x-twilio-signature") != twilio_signature(s.alerts_sms_token, url, form):
            raise Unauthorized("bad provider signature")
        sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
        mapped = {"delivered": "delivered", "failed": "failed", "undelivered": "failed", "sent": "sent"}.get(status)
        if not sid or mapped is None:
            return {"updated": 0}
        async with rt.pool.acquire() as conn:
            res = await conn.execute(
                """UPDATE deliveries SET status = CASE WHEN status = 'delivered' THEN status ELSE $2 END,
                       last_error = $3, updated_at = now() WHERE channel = 'sms' AND provider_id = $1""",
                sid,
                mapped,
                form.get("ErrorCode") or None,
            )
        return {"updated": int(res.rsplit(" ", 1)[-1])}

    @get("/{ref:str}")
    async def get_alert(self, request: Request[Any, Any, Any], ref: str) -> Any:
        """JSON by id; ``/{id}.cap`` is the CAP 1.2 document (public once sent)."""
        rt = runtime_of(request)
        cap = ref.endswith(".cap")
        async with rt.pool.acquire() as conn:
            row = await service.get(conn, _uuid(ref.removesuffix(".cap")))
        principal = request.scope.get("user")
        if row["status"] not in PUBLIC_STATUSES or not cap:
            if not isinstance(principal, Principal):
                raise Unauthorized("authentication required")
            if not allowed(principal.role, "alerts:read"):
                raise Forbidden("may not read alerts")
        if cap:
            headers = {"x-sitrep-exercise": "true"} if is_exercise(row["cap_status"]) else {}
            return Response(service.cap_for(row, rt.settings), media_type=CAP_MEDIA_TYPE, headers=headers)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @patch("/{ref:str}", guards=[requires("alerts:compose")])
    async def edit(self, request: Request[Any, Any, Any], ref: str, data: AlertPatch) -> Alert:
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.patch(conn, principal_of(request), _uuid(ref), data, rt.settings)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @get("/{ref:str}/preview", guards=[requires("alerts:compose")])
    async def preview(self, request: Request[Any, Any, Any], ref: str) -> Preview:
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn:
            row = await service.get(conn, _uuid(ref))
            return await preview(conn, row, rt.settings)

    @post("/{ref:str}/submit", guards=[requires("alerts:compose")], status_code=HTTP_200_OK)
    async def submit(self, request: Request[Any, Any, Any], ref: str) -> Alert:
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.submit(conn, principal_of(request), _uuid(ref))
        _announce(request, row)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @post("/{ref:str}/approve", guards=[requires("alerts:approve")], status_code=HTTP_200_OK)
    async def approve(self, request: Request[Any, Any, Any], ref: str, data: ApproveIn | None = None) -> SendOut:
        """Approve (by someone other than the author); ``{"send": true}`` sends in the same step."""
        rt = runtime_of(request)
        counts: dict[str, int] = {}
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.approve(conn, principal_of(request), _uuid(ref), rt.settings)
            if data is not None and data.send:
                row, counts = await service.send(conn, principal_of(request), row["id"], rt.settings)
        _announce(request, row)
        alert = to_alert(row, rt.settings.alerts.alerts_public_url)
        return SendOut(alert=alert, exercise=alert.exercise, deliveries=counts)

    @post("/{ref:str}/send", guards=[requires("alerts:approve")], status_code=HTTP_200_OK)
    async def send(self, request: Request[Any, Any, Any], ref: str) -> SendOut:
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            row, counts = await service.send(conn, principal_of(request), _uuid(ref), rt.settings)
        _wake_outbox(request)
        _announce(request, row)
        alert = to_alert(row, rt.settings.alerts.alerts_public_url)
        return SendOut(alert=alert, exercise=alert.exercise, deliveries=counts)

    @post("/{ref:str}/update", guards=[requires("alerts:compose")], status_code=HTTP_201_CREATED)
    async def update(self, request: Request[Any, Any, Any], ref: str) -> Alert:
        """A new draft ``Update`` of a sent alert (edit it with PATCH, then submit)."""
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.derive(conn, principal_of(request), _uuid(ref), "Update", rt.settings)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @post("/{ref:str}/cancel", guards=[requires("alerts:compose")], status_code=HTTP_201_CREATED)
    async def cancel(self, request: Request[Any, Any, Any], ref: str, data: CorrectIn | None = None) -> Alert:
        """A new draft ``Cancel`` of a sent alert (submit and approve it like any alert)."""
        rt = runtime_of(request)
        note = data.note if data else None
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await service.derive(conn, principal_of(request), _uuid(ref), "Cancel", rt.settings, note=note)
        return to_alert(row, rt.settings.alerts.alerts_public_url)

    @post("/{ref:str}/correct", guards=[requires("alerts:approve")], status_code=HTTP_200_OK)
    async def correct(self, request: Request[Any, Any, Any], ref: str, data: CorrectIn | None = None) -> SendOut:
        """Cancel a mistaken alert and send the correction to exactly its recipients, now."""
        rt = runtime_of(request)
        note = (data or CorrectIn()).note
        if not note.strip():
            raise InvalidInput("empty note", errors=[{"field": "note", "message": "must not be empty"}])
        async with rt.pool.acquire() as conn, conn.transaction():
            row, counts = await service.correct(conn, principal_of(request), _uuid(ref), note, rt.settings)
        _wake_outbox(request)
        _announce(request, row)
        alert = to_alert(row, rt.settings.alerts.alerts_public_url)
        return SendOut(alert=alert, exercise=alert.exercise, deliveries=counts)

    @get("/{ref:str}/deliveries", guards=[requires("alerts:compose")])
    async def deliveries(
        self, request: Request[Any, Any, Any], ref: str, limit: int = 200, cursor: str | None = None
    ) -> DeliveriesOut:
        check_limit(limit, 1000)
        after = decode_cursor(cursor, 1)
        rt = runtime_of(request)
        async with rt.pool.acquire() as conn:
            row = await service.get(conn, _uuid(ref))
            rep = await delivery.delivery_report(
                conn, row["identifier"], limit=limit + 1, after=int(after[0]) if after else 0
            )
        items = rep["items"][:limit]
        return DeliveriesOut(
            alert_id=row["id"],
            identifier=row["identifier"],
            version=int(row["content"]["version"]),
            exercise=is_exercise(row["cap_status"]),
            counts=rep["counts"],
            by_channel=rep["by_channel"],
            items=items,
            next_cursor=encode_cursor(items[-1]["id"]) if len(rep["items"]) > limit else None,
        )


def _vapid(request: Request[Any, Any, Any]) -> VapidKeys | None:
    channels = runtime_of(request).by_name.get("alert-channels")
    return getattr(channels, "vapid", None)


class VapidPublicKey(msgspec.Struct, kw_only=True):
    public_key: str
    """base64url uncompressed P-256 point: pass it as ``applicationServerKey`` to ``pushManager.subscribe``."""


@get("/v1/push/vapid-public-key", tags=["subscribers"])
async def vapid_public_key(request: Request[Any, Any, Any]) -> VapidPublicKey:
    """The server's VAPID public key for browser push subscriptions (404 when web push is off)."""
    keys = _vapid(request)
    if keys is None:
        raise NotFound("web push is not configured on this server")
    return VapidPublicKey(public_key=keys.public_key)


def _wake_outbox(request: Request[Any, Any, Any]) -> None:
    rt = runtime_of(request)
    dispatcher = rt.by_name.get("outbox")
    if dispatcher is not None and hasattr(dispatcher, "wake"):
        dispatcher.wake()


@get("/v1/alerts.atom", tags=["alerts"])
async def alerts_atom(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Public Atom index of sent alerts; each entry links to its CAP document."""
    rt = runtime_of(request)
    async with rt.pool.acquire() as conn:
        rows = await repo.published(conn)
    entries = [
        {
            "id": r["id"],
            "identifier": r["identifier"],
            "title": ("[EXERCISE] " if is_exercise(r["cap_status"]) else "")
            + f"{r['msg_type']}: {r['content']['texts'][0]['headline']}",
            "summary": r["content"]["texts"][0]["description"][:500],
            "updated": r["sent_at"],
            "cap_status": r["cap_status"],
        }
        for r in rows
    ]
    updated = max((e["updated"] for e in entries), default=datetime.now(UTC))
    body = build_atom(entries, base_url=rt.settings.alerts.alerts_public_url, updated=updated)
    return Response(body, media_type=ATOM_MEDIA_TYPE)


class SubscriberController(Controller):
    path = "/v1/subscribers"
    tags = ["subscribers"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, request: Request[Any, Any, Any], data: SubscriberCreate) -> SubscriberCreated:
        """Public sign-up (no account; rate limited per address). Nothing is sent until confirmed."""
        rt = runtime_of(request)
        await check_signup_rate(rt.redis, client_address(request), rt.settings.alerts.alerts_signups_per_hour)
        async with rt.pool.acquire() as conn, conn.transaction():
            out = await sign_up(conn, data, rt.settings, push_enabled=_vapid(request) is not None)
        _wake_outbox(request)
        return out

    @get("/confirm")
    async def confirm_get(self, request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
        return await self._confirm(request, token)

    @post("/confirm", status_code=HTTP_200_OK)
    async def confirm_post(self, request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
        return await self._confirm(request, token)

    async def _confirm(self, request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
        async with runtime_of(request).pool.acquire() as conn, conn.transaction():
            sid = await confirm(conn, token)
        return {"id": str(sid), "status": "confirmed"}

    @get("/unsubscribe", media_type="text/html")
    async def unsubscribe_page(self, request: Request[Any, Any, Any], token: str) -> str:
        """A page with one button (a GET never unsubscribes: mail scanners follow links)."""
        if check_unsubscribe_token(runtime_of(request).settings.auth.jwt_secret, token) is None:
            raise NotFound("unknown unsubscribe token")
        return (
            "<!doctype html><title>Unsubscribe</title><form method=post>"
            "<p>Stop receiving public alerts?</p><button>Unsubscribe</button></form>"
        )

    @post("/unsubscribe", status_code=HTTP_200_OK)
    async def unsubscribe(self, request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
        """RFC 8058 one-click: the mail client POSTs ``List-Unsubscribe=One-Click`` here."""
        rt = runtime_of(request)
        sid = check_unsubscribe_token(rt.settings.auth.jwt_secret, token)
        if sid is None:
            raise NotFound("unknown unsubscribe token")
        async with rt.pool.acquire() as conn, conn.transaction():
            await unsubscribe(conn, sid)
        return {"id": sid, "status": "unsubscribed"}
