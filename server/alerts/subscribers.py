"""Public sign-up for alerts: places, channels, double opt-in, one-click unsubscribe.

Sign-up needs no account and is rate limited per client address. A new subscriber gets nothing until
they confirm with the token sent to them (by email, else SMS, else their webhook). Unsubscribing is
one request with the token every alert email carries (RFC 8058 ``List-Unsubscribe-Post``).
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec
import shapely
from redis.exceptions import RedisError
from shapely.geometry import Point

from geo.geometry import GeometryError, parse_geojson

from .. import audit
from ..errors import Conflict, InvalidInput, NotFound, TooManyRequests, field_error
from ..outbox.core import enqueue
from ..outbox.webhook import check_url
from ..security import token_hash
from ..settings import Settings
from ..structs import Body
from .messages import unsubscribe_token, webhook_secret
from .push import PushSubscription, parse_subscription, store_subscription
from .targeting import place_cells

EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}$")
PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_PLACES = 10
MAX_PLACE_KM2 = 250.0


class PlaceIn(Body, kw_only=True):
    geometry: dict[str, Any]
    label: str = ""


class QuietHours(Body, kw_only=True):
    start: str
    end: str
    tz: str = "UTC"


class SubscriberCreate(Body, kw_only=True):
    email: str | None = None
    phone: str | None = None
    webhook_url: str | None = None
    push: dict[str, Any] | None = None
    language: str = "en-US"
    quiet_hours: QuietHours | None = None
    places: list[PlaceIn]
    exercise: bool = False


class SubscriberCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    status: str
    channels: list[str]
    places: int
    confirmation_sent_via: str
    unsubscribe_token: str
    webhook_secret: str | None = None


def _place_geom(place: PlaceIn, i: int) -> Any:
    g = place.geometry
    if g.get("type") == "Point":
        c = g.get("coordinates")
        if (
            not isinstance(c, list)
            or len(c) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c)
            or not (-180 <= c[0] <= 180 and -90 <= c[1] <= 90)
        ):
            raise InvalidInput("invalid place", errors=[field_error(f"places[{i}].geometry", "[lon, lat] in range")])
        return Point(float(c[0]), float(c[1]))
    try:
        return parse_geojson(g, max_vertices=2000, max_area_km2=MAX_PLACE_KM2)
    except GeometryError as exc:
        raise InvalidInput(
            "invalid place", errors=[field_error(f"places[{i}].{f}", m) for f, m in exc.errors]
        ) from None


async def _validate(
    data: SubscriberCreate, settings: Settings, push_enabled: bool
) -> tuple[list[str], PushSubscription | None]:
    errors = []
    push = None
    channels = []
    if data.email is not None:
        if EMAIL.match(data.email):
            channels.append("email")
        else:
            errors.append(field_error("email", "not an email address"))
    if data.phone is not None:
        if PHONE.match(data.phone):
            channels.append("sms")
        else:
            errors.append(field_error("phone", "an E.164 number such as +13195550100"))
    if data.webhook_url is not None:
        why = await check_url(data.webhook_url, allow_private=settings.alerts.alerts_allow_private_webhooks)
        if why:
            errors.append(field_error("webhook_url", why))
        else:
            channels.append("alert_webhook")
    if data.push is not None:
        push, push_errors = await parse_subscription(data.push, settings.alerts, enabled=push_enabled)
        errors.extend(push_errors)
        if push is not None:
            channels.append("push")
    if not channels and not errors:
        errors.append(field_error("channels", "give at least one of email, phone, webhook_url, push"))
    if not 1 <= len(data.places) <= MAX_PLACES:
        errors.append(field_error("places", f"1 to {MAX_PLACES} places"))
    if data.quiet_hours is not None:
        try:
            dtime.fromisoformat(data.quiet_hours.start)
            dtime.fromisoformat(data.quiet_hours.end)
            ZoneInfo(data.quiet_hours.tz)
        except (ValueError, ZoneInfoNotFoundError):
            errors.append(field_error("quiet_hours", "start/end as HH:MM and an IANA time zone"))
    if not (2 <= len(data.language) <= 35):
        errors.append(field_error("language", "a language tag such as en-US"))
    if errors:
        raise InvalidInput("invalid subscription", errors=errors)
    return channels, push


async def check_signup_rate(redis: Any, address: str, per_hour: int) -> None:
    if per_hour <= 0:
        return
    key = f"sitrep:alerts:signup:{address}:{int(time.time() // 3600)}"
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 3700, nx=True)
        count, _ = await pipe.execute()
    except RedisError:
        return
    if count > per_hour:
        raise TooManyRequests(
            "too many sign-ups from this address; try again later", retry_after_s=3600 - time.time() % 3600
        )


async def sign_up(
    conn: asyncpg.Connection, data: SubscriberCreate, settings: Settings, *, push_enabled: bool = False
) -> SubscriberCreated:
    """Store a pending subscriber; ``push_enabled`` says whether this server has VAPID keys."""
    channels, push = await _validate(data, settings, push_enabled)
    geoms = [_place_geom(p, i) for i, p in enumerate(data.places)]
    try:
        cells = [place_cells(g) for g in geoms]
    except ValueError as exc:
        raise InvalidInput("place too large", errors=[field_error("places", str(exc))]) from None
    token = secrets.token_urlsafe(24)
    sid = await conn.fetchval(
        """INSERT INTO subscribers (email, phone, webhook_url, language, quiet_hours, exercise, confirm_token_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
        data.email,
        data.phone,
        data.webhook_url,
        data.language,
        msgspec.to_builtins(data.quiet_hours) if data.quiet_hours else None,
        data.exercise,
        token_hash(token),
    )
    await conn.execute(
        """INSERT INTO subscriber_places (subscriber_id, geom, cells)
           SELECT $1, ST_SetSRID(ST_GeomFromWKB(g), 4326), string_to_array(c, ',')::bigint[]
           FROM unnest($2::bytea[], $3::text[]) AS u(g, c)""",
        sid,
        [shapely.to_wkb(g) for g in geoms],
        [",".join(map(str, c)) for c in cells],
    )
    if push is not None and not await store_subscription(conn, sid, push):
        raise Conflict(
            "this push subscription is already registered; unsubscribe it first",
            errors=[field_error("push.endpoint", "already registered")],
        )
    via = await _send_confirmation(conn, str(sid), data, token, settings, push)
    await audit.record(conn, None, "subscriber.create", "subscriber", sid, {"channels": channels})
    secret = settings.auth.jwt_secret
    return SubscriberCreated(
        id=sid,
        status="pending_confirmation",
        channels=channels,
        places=len(geoms),
        confirmation_sent_via=via,
        unsubscribe_token=unsubscribe_token(secret, str(sid)),
        webhook_secret=webhook_secret(secret, str(sid)) if data.webhook_url else None,
    )


async def _send_confirmation(
    conn: asyncpg.Connection, sid: str, data: SubscriberCreate, token: str, settings: Settings,
    push: PushSubscription | None,
) -> str:  # fmt: skip
    link = f"{settings.alerts.alerts_public_url}/v1/subscribers/confirm?token={token}"
    mid = f"subscriber-confirm:{sid}"
    payload: dict[str, Any]
    if data.email:
        payload = {
            "to": data.email,
            "subject": "Confirm your alert subscription",
            "text": f"Confirm that you want public alerts for your places:\n\n{link}\n\nConfirmation code: {token}\n",
            "confirm_token": token,
        }
        await enqueue(conn, channel="email", target=data.email, payload=payload, message_id=mid, subscriber_id=sid)
        return "email"
    if data.phone:
        payload = {"to": data.phone, "body": f"Confirm alerts: {link}", "confirm_token": token}
        await enqueue(conn, channel="sms", target=data.phone, payload=payload, message_id=mid, subscriber_id=sid)
        return "sms"
    if push is not None:
        payload = {
            "subscription": push.info(),
            "urgency": "normal",
            "expires": None,
            "notification": {"title": "Confirm your alert subscription", "body": "Tap to confirm.", "url": link},
            "confirm_token": token,
        }
        await enqueue(conn, channel="push", target=push.endpoint, payload=payload, message_id=mid, subscriber_id=sid)
        return "push"
    event = {"type": "subscription.confirm", "data": {"subscriber_id": sid, "confirm_url": link, "token": token}}
    payload = {"url": data.webhook_url, "subscriber_id": sid, "event": event, "confirm_token": token}
    await enqueue(
        conn, channel="alert_webhook", target=data.webhook_url or "", payload=payload, message_id=mid, subscriber_id=sid
    )
    return "alert_webhook"


async def confirm(conn: asyncpg.Connection, token: str) -> uuid.UUID:
    sid = await conn.fetchval(
        """UPDATE subscribers SET confirmed_at = coalesce(confirmed_at, now())
           WHERE confirm_token_hash = $1 AND unsubscribed_at IS NULL RETURNING id""",
        token_hash(token),
    )
    if sid is None:
        raise NotFound("unknown or spent confirmation token")
    await audit.record(conn, None, "subscriber.confirm", "subscriber", sid)
    return sid  # type: ignore[no-any-return]


async def unsubscribe(conn: asyncpg.Connection, sid: str) -> None:
    await conn.execute(
        "UPDATE subscribers SET unsubscribed_at = coalesce(unsubscribed_at, now()) WHERE id = $1", uuid.UUID(sid)
    )
    await conn.execute("DELETE FROM push_subscriptions WHERE subscriber_id = $1", uuid.UUID(sid))
    await audit.record(conn, None, "subscriber.unsubscribe", "subscriber", sid)
