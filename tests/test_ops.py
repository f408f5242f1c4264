"""Probes, metrics, OpenAPI, body limits, and readiness when Redis goes away."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from tests.conftest import Database, ServerProcess, sitrep_env, start_redis, start_server


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["postgres"] == "ok" and body["redis"] == "ok" and body["migrations"] == "current"
    assert body["postgis"].startswith("3.")


async def test_metrics_expose_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    text = (await client.get("/metrics")).text
    assert 'sitrep_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "sitrep_http_request_duration_seconds_bucket" in text
    assert "sitrep_db_pool_connections" in text


async def test_openapi_schema_and_ui(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/auth/token" in schema["paths"] and "/v1/devices" in schema["paths"]
    ui = await client.get("/schema")
    assert ui.status_code == 200 and "html" in ui.headers["content-type"]


async def test_oversized_body_is_413(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    r = await client.post(
        "/v1/teams",
        content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={**admin_headers, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


async def test_ready_is_503_when_redis_stops(database: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = start_redis(tmp_path / "redis")
    env = sitrep_env(database.url, redis.url, database.state_dir)
    srv: ServerProcess = start_server(env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as c:
            assert (await c.get("/ready")).status_code == 200
            redis.stop()
            down = await c.get("/ready")
            assert down.status_code == 503
            assert down.json()["redis"].startswith("error")
            assert (await c.get("/health")).status_code == 200
            redis.start()
            ok = None
            for _ in range(50):
                ok = await c.get("/ready")
                if ok.status_code == 200:
                    break
            assert ok is not None and ok.status_code == 200
    finally:
        srv.stop()
        redis.stop()
    # a stopped server leaves no metrics directory behind in /tmp
    assert not (Path(tempfile.gettempdir()) / f"sitrep-metrics-{srv.port}").exists()


def test_refuses_default_secret_off_loopback() -> None:
    import pytest

    from server.settings import SettingsError, load_settings

    settings = load_settings({"SITREP_HOST": "0.0.0.0"})
    with pytest.raises(SettingsError):
        settings.check_for_serving()
    load_settings({"SITREP_HOST": "0.0.0.0", "SITREP_JWT_SECRET": "x" * 40}).check_for_serving()
    load_settings({"SITREP_HOST": "127.0.0.1"}).check_for_serving()
