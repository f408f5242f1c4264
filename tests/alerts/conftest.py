"""Fixtures for the alert tests: an SMTP sink, two fake SMS providers, a webhook receiver, a web push
service, and a sitrep server configured to deliver to them (on the session database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.alerts.fakes import FakePushService, FakeSmsProvider, SmtpSink, WebhookReceiver
from tests.conftest import Database, ServerProcess, bearer, free_port, login, start_server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
async def sms_primary() -> AsyncIterator[FakeSmsProvider]:
    p = FakeSmsProvider(name="a")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="session")
async def sms_secondary() -> AsyncIterator[FakeSmsProvider]:
    p = FakeSmsProvider(name="b")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="session")
async def hook_receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(scope="session")
async def push_service() -> AsyncIterator[FakePushService]:
    p = FakePushService()
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="session")
def alert_server(
    database: Database,
    smtp_sink: SmtpSink,
    sms_primary: FakeSmsProvider,
    sms_secondary: FakeSmsProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    """A server whose alert channels point at the local fakes (private webhooks allowed)."""
    port = free_port()
    env = {
        **database.env,
        "SITREP_ALERTS_SMTP_PORT": str(smtp_sink.port),
        "SITREP_ALERTS_SMS_URLS": f"{sms_primary.url},{sms_secondary.url}",
        "SITREP_ALERTS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SITREP_ALERTS_ALLOW_PRIVATE_WEBHOOKS": "true",
        "SITREP_WEBHOOK_ALLOW_PRIVATE": "true",
        "SITREP_ALERTS_PUSH_ALLOW_PRIVATE": "true",
        "SITREP_OUTBOX_ENABLED": "true",
        "SITREP_OUTBOX_POLL_MS": "50",
        "SITREP_OUTBOX_BACKOFF_BASE_S": "0.2",
        "SITREP_ALERTS_SIGNUPS_PER_HOUR": "100000",
    }
    srv = start_server(env, tmp_path_factory.mktemp("alert-logs"), port=port)
    yield srv
    srv.stop()


@pytest.fixture
async def aclient(alert_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=alert_server.url, timeout=30) as c:
        yield c


@pytest.fixture
async def coord(aclient: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(aclient, "coord"))


@pytest.fixture
async def fire_coord(aclient: httpx.AsyncClient) -> dict[str, str]:
    return bearer(await login(aclient, "fire-coord"))


def square(lon: float, lat: float, half_deg: float) -> dict[str, Any]:
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon - half_deg, lat - half_deg],
                [lon + half_deg, lat - half_deg],
                [lon + half_deg, lat + half_deg],
                [lon - half_deg, lat + half_deg],
                [lon - half_deg, lat - half_deg],
            ]
        ],
    }


def alert_body(geometry: dict[str, Any], /, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "Flash Flood",
        "category": ["Met"],
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Observed",
        "response_type": ["Evacuate"],
        "expires": "2099-01-01T00:00:00Z",
        "area": {"geometry": geometry, "description": "Test area"},
        "texts": [
            {
                "language": "en-US",
                "headline": "Flash flood: leave low ground now",
                "description": "The river is rising fast.",
                "instruction": "Move to higher ground.",
                "sms_90": "Flash flood: move to higher ground now.",
                "sms_360": "Flash flood warning: the river is rising fast. Move to higher ground now.",
            },
            {
                "language": "es-US",
                "headline": "Inundación repentina: salga de zonas bajas",
                "description": "El río sube rápido.",
                "instruction": "Vaya a terreno alto.",
                "sms_90": "Inundación: vaya a terreno alto ya.",
            },
        ],
    }
    body.update(over)
    return body
