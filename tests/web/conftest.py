"""Browser fixtures: web/dist built before a dedicated server starts, Debian's Chromium driven by Playwright.

The shared ``server`` fixture serves web/dist only if it existed when the server started, so this package
builds first and then starts its own server against the session database.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, Database, ServerProcess, start_server

WEB = REPO / "web"
DIST = WEB / "dist"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _sources_newer_than_dist() -> bool:
    index = DIST / "index.html"
    if not index.exists():
        return True
    built = index.stat().st_mtime
    sources = [WEB / "index.html", WEB / "package.json", WEB / "vite.config.js", *(WEB / "src").rglob("*")]
    return any(p.is_file() and p.stat().st_mtime > built for p in sources)


def build_web() -> None:
    if not _sources_newer_than_dist():
        return
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed, so web/dist cannot be built")
    if not (WEB / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True, timeout=600)
    subprocess.run(["npm", "run", "build"], cwd=WEB, check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="session")
def web_dist() -> Path:
    build_web()
    return DIST


@pytest.fixture(scope="session")
def web_server(web_dist: Path, database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**database.env, "SITREP_STATIC_DIR": str(web_dist)}
    srv = start_server(env, tmp_path_factory.mktemp("web-logs"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium package is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def api(web_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=web_server.url, timeout=30) as c:
        yield c


async def new_page(browser: Any, web_server: ServerProcess, *, width: int = 1280, height: int = 800, **kw: Any) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": height}, base_url=web_server.url, **kw)
    page = await context.new_page()
    page.set_default_timeout(30000)
    page.on("pageerror", lambda e: print(f"pageerror: {e}"))
    return page


async def ui_login(page: Any, username: str, password: str = "sitrep-demo") -> None:
    await page.goto("/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_function("() => window.sitrep && window.sitrep.me && window.sitrep.view !== 'login'")


async def wait_map(page: Any) -> None:
    await page.wait_for_function("() => window.sitrep.map && window.sitrep.map.loaded")


async def endpoint_exists(api: httpx.AsyncClient, headers: dict[str, str], path: str) -> bool:
    r = await api.get(path, headers=headers)
    return r.status_code not in (404, 405)
