"""A real local webhook receiver (uvicorn in the test's event loop) that fails on purpose.

Modes: ``ok`` (200), ``fail`` (500 for the next ``fail_times`` requests, then 200), ``error``
(always 500), ``hang`` (never answers). Every request is recorded with its headers and body.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tests.conftest import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    fail_times: int = 0
    requests: list[Received] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ok(self, path: str | None = None) -> list[Received]:
        return [r for r in self.requests if r.status == 200 and (path is None or r.path == path)]

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        mode = self.mode
        if mode == "hang" or (mode == "hang_path" and scope["path"].endswith("slow")):
            self.requests.append(Received(scope["path"], headers, body, 0))
            await asyncio.sleep(3600)
        status = 200
        if mode == "error":
            status = 500
        elif mode == "fail" and self.fail_times > 0:
            self.fail_times -= 1
            status = 500
        self.requests.append(Received(scope["path"], headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"nope"})

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off", interface="asgi3",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(200):
            if self._server.started:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("receiver did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), 10)
            self._server = self._task = None
