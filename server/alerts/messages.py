"""What each channel carries for one alert version and one recipient (rendered once, at enqueue).

Exercise and test alerts carry ``[EXERCISE]`` at the start of every message on every channel.
Per-subscriber secrets (the unsubscribe token, the webhook signing secret) are derived from the
server secret with HMAC, so they never need to be stored in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import EXERCISE_PREFIX, is_exercise, sms_text
from .targeting import Recipient


def derive_token(secret: str, purpose: str, subscriber_id: str) -> str:
    mac = hmac.new(secret.encode(), f"{purpose}:{subscriber_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def unsubscribe_token(secret: str, subscriber_id: str) -> str:
    """``{subscriber id}.{mac}``: checkable without storing anything."""
    return f"{subscriber_id}.{derive_token(secret, 'unsubscribe', subscriber_id)}"


def check_unsubscribe_token(secret: str, token: str) -> str | None:
    """The subscriber id of a genuine unsubscribe token, else None."""
    sid, _, mac = token.partition(".")
    if not sid or not mac:
        return None
    return sid if hmac.compare_digest(mac, derive_token(secret, "unsubscribe", sid)) else None


def webhook_secret(secret: str, subscriber_id: str) -> str:
    """Standard Webhooks secret (``whsec_`` + base64 key) of one subscriber's endpoint."""
    key = hmac.new(secret.encode(), f"webhook:{subscriber_id}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()


def pick_text(content: dict[str, Any], language: str) -> dict[str, Any]:
    texts = content["texts"]
    for t in texts:
        if t["language"].lower() == language.lower():
            return dict(t)
    primary = language.split("-")[0].lower()
    for t in texts:
        if t["language"].split("-")[0].lower() == primary:
            return dict(t)
    return dict(texts[0])


PUSH_URGENCY = {"Immediate": "high", "Expected": "normal", "Future": "low", "Past": "very-low", "Unknown": "normal"}
"""CAP ``urgency`` → RFC 8030 ``Urgency`` (a phone saving battery may hold back low-urgency pushes)."""


def urgency_of(content: dict[str, Any]) -> str:
    """The web push ``Urgency`` of an alert: from its CAP urgency; an Extreme alert is always ``high``."""
    if content.get("severity") == "Extreme":
        return "high"
    return PUSH_URGENCY.get(str(content.get("urgency")), "normal")


def overrides_quiet_hours(content: dict[str, Any]) -> bool:
    return content["severity"] == "Extreme" or content["urgency"] == "Immediate"


def quiet_until(quiet: dict[str, Any] | None, now: datetime) -> datetime | None:
    """End of the subscriber's quiet hours if ``now`` falls inside them, else None.

    ``quiet`` is ``{"start": "22:00", "end": "07:00", "tz": "America/Chicago"}``.
    """
    if not quiet:
        return None
    try:
        tz = ZoneInfo(quiet.get("tz") or "UTC")
        start, end = time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"])
    except (KeyError, ValueError, ZoneInfoNotFoundError):
        return None
    local = now.astimezone(tz)
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz)


def render(
    *,
    channel: str,
    recipient: Recipient,
    alert: dict[str, Any],
    base_url: str,
    secret: str,
) -> dict[str, Any]:
    """The outbox payload of one delivery (everything the sender needs, nothing it must look up)."""
    content = alert["content"]
    text = pick_text(content, recipient.language)
    exercise = is_exercise(alert["cap_status"])
    prefix = EXERCISE_PREFIX if exercise else ""
    kind = {"Alert": "ALERT", "Update": "UPDATE", "Cancel": "CANCELLED"}[alert["msg_type"]]
    cap_url = f"{base_url}/v1/alerts/{alert['id']}.cap"
    common = {
        "delivery_id": alert["delivery_ids"][(recipient.id, channel)],
        "alert_id": str(alert["id"]),
        "identifier": alert["identifier"],
        "exercise": exercise,
    }
    if channel == "email":
        token = unsubscribe_token(secret, recipient.id)
        unsubscribe = f"{base_url}/v1/subscribers/unsubscribe?token={token}"
        body = "\n\n".join(
            part
            for part in (
                f"{prefix}{kind}: {text['headline']}",
                text["description"],
                text.get("instruction") or "",
                f"Area: {content.get('area_desc', '')}",
                f"Expires: {content['expires']}",
                f"Full alert (CAP): {cap_url}",
                f"Unsubscribe: {unsubscribe}",
            )
            if part
        )
        return {
            **common,
            "to": recipient.email,
            "subject": f"{prefix}{kind}: {text['headline']}"[:200],
            "text": body,
            "headers": {
                "List-Unsubscribe": f"<{unsubscribe}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        }
    if channel == "sms":
        return {**common, "to": recipient.phone, "body": sms_text(text, alert["cap_status"], long=True)}
    if channel == "alert_webhook":
        event = {
            "type": f"alert.{alert['msg_type'].lower()}",
            "timestamp": alert["sent_at"],
            "data": {
                "id": str(alert["id"]),
                "identifier": alert["identifier"],
                "msg_type": alert["msg_type"],
                "status": alert["cap_status"],
                "exercise": exercise,
                "references": alert["references"],
                "headline": prefix + text["headline"],
                "description": text["description"],
                "instruction": text.get("instruction") or "",
                "severity": content["severity"],
                "urgency": content["urgency"],
                "expires": content["expires"],
                "cap_url": cap_url,
            },
        }
        return {**common, "url": recipient.webhook_url, "subscriber_id": recipient.id, "event": event}
    if channel == "push":
        return {
            **common,
            "subscription": recipient.push,
            "urgency": urgency_of(content),
            "expires": content["expires"],
            "topic": uuid.UUID(str(content["thread_id"])).hex if content.get("thread_id") else None,
            "notification": {
                "title": prefix + text["headline"],
                "body": sms_text(text, alert["cap_status"], long=False),
                "url": cap_url,
                "identifier": alert["identifier"],
                "msg_type": alert["msg_type"],
                "exercise": exercise,
                "severity": content["severity"],
                "urgency": content["urgency"],
                "expires": content["expires"],
                "lang": text["language"],
            },
        }
    raise ValueError(f"unknown channel {channel!r}")
