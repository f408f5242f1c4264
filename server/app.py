"""The app factory. Importing this module has no side effects; `create_app()` reads settings."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

from .alerts.controller import AlertController, SubscriberController, alerts_atom, vapid_public_key
from .alerts.senders import AlertChannels
from .auth.controller import AuthController
from .devices.controller import DeviceController, ResponderAdminController
from .feeds import feed_components, feed_handlers
from .fences.controller import FenceEventController
from .fences.evaluator import FenceEvaluator
from .hazards.controller import GeofenceController, HazardController, ResponderHazardController
from .incidents.arrival import ArrivalMonitor
from .incidents.controller import incident_handlers
from .middleware import front_door, sitrep_middleware
from .notifications.controller import NotificationController
from .observability import configure_logging
from .ops.controller import ops_handlers
from .outbox.controller import WebhookController
from .outbox.dispatcher import OutboxDispatcher
from .positions import position_components, position_fast_paths, position_handlers
from .problems import EXCEPTION_HANDLERS
from .resources.controller import ResourceController
from .runtime import Component, Runtime
from .settings import Settings, load_settings
from .stream.controller import stream_handlers
from .stream.hub import StreamHub
from .users.controller import TeamController, UserController

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


def route_handlers() -> list[Any]:
    """Every area's controllers. Areas add themselves here."""
    return [
        *ops_handlers,
        AuthController,
        UserController,
        TeamController,
        DeviceController,
        ResponderAdminController,
        *position_handlers(),
        *stream_handlers,
        alerts_atom,
        vapid_public_key,
        AlertController,
        SubscriberController,
        *incident_handlers,
        ResourceController,
        HazardController,
        ResponderHazardController,
        GeofenceController,
        FenceEventController,
        NotificationController,
        WebhookController,
        *feed_handlers(),
    ]


def components(settings: Settings) -> list[Component]:
    """Long-lived tasks owned by the runtime, in start order. Areas add themselves here."""
    # The stream hub starts first and stops last: what other components publish while stopping
    # still reaches Redis.
    return [
        StreamHub(),
        *position_components(settings),
        AlertChannels(),
        ArrivalMonitor(),
        FenceEvaluator(),
        OutboxDispatcher(),
        *feed_components(),
    ]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    settings.check_for_serving()
    configure_logging(settings.server.log_level)
    runtime = Runtime(settings, components(settings))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.start()
        # Everything alive now (modules, the app, caches just loaded) lives as long as the worker: move it
        # out of the collector's generations so full collections stop re-scanning ~200,000 objects.
        gc.collect()
        gc.freeze()
        # Collect young objects every 20,000 allocations (not 700) and the old generation after 100
        # young-of-young passes (not 10): at 5,000 requests/s the defaults ran a full collection every
        # ~2 s, a 10-40 ms pause that every request in flight waited out (bench/ingest 2b paced p95
        # 47-76 ms with the defaults, 34-51 ms with these, same machine, alternating runs).
        gc.set_threshold(20_000, 10, 100)
        try:
            yield
        finally:
            await runtime.stop()

    handlers = route_handlers()
    static_dir = Path(settings.server.static_dir) if settings.server.static_dir else WEB_DIST
    if static_dir.is_dir():
        handlers.append(
            create_static_files_router(
                path="/", directories=[static_dir], html_mode=True, include_in_schema=False, name="web"
            )
        )
    app = Litestar(
        route_handlers=handlers,
        lifespan=[lifespan],
        middleware=[sitrep_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.server.max_body_bytes,
        state=State({"runtime": runtime}),
        openapi_config=OpenAPIConfig(
            title="sitrep",
            version="0.1.0",
            description="Real-time geospatial operations server for emergency response.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        cors_config=CORSConfig(allow_origins=list(settings.server.cors_origins))
        if settings.server.cors_origins
        else None,
        debug=False,
        logging_config=None,
    )
    if not settings.server.cors_origins:  # with CORS, every request goes through Litestar's CORS layer
        app.asgi_handler = front_door(app.asgi_handler, position_fast_paths())
    return app
