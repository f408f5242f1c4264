"""The Dockerfile and compose file cannot run here (no Docker engine); keep them correct by linting."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        [hadolint, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_and_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 3
    assert "\nUSER 10001" in text
    assert "HEALTHCHECK" in text


def test_compose_has_postgis_redis_and_app_wired_together() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "redis", "app"}
    assert "postgis" in services["db"]["image"]
    app_env = services["app"]["environment"]
    assert "@db:5432" in app_env["SITREP_DATABASE_URL"] and "redis://redis:6379" in app_env["SITREP_REDIS_URL"]
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    # The app must not start on the default JWT secret off loopback: compose requires one.
    assert "?" in app_env["SITREP_JWT_SECRET"]
