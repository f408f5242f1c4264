"""Responder positions: durable group-commit ingest (batch JSON, OsmAnd/Traccar, WebSocket),
live state with staleness, history queries and retention."""

from __future__ import annotations

from typing import Any

from ..settings import Settings


def position_handlers() -> list[Any]:
    from .ingest_controller import PositionIngestController, osmand_endpoint
    from .query_controller import (
        HexbinController,
        get_responder_live,
        list_responders,
        nearby_responders,
        responder_track,
    )
    from .ws import device_stream

    return [
        PositionIngestController,
        osmand_endpoint,
        device_stream,
        HexbinController,
        list_responders,
        nearby_responders,
        get_responder_live,
        responder_track,
    ]


def position_fast_paths() -> dict[tuple[str, str], Any]:
    """(method, path) -> the pure-ASGI app that answers it in front of Litestar (server.middleware.front_door)."""
    from .osmand_http import OSMAND_PATH, serve_osmand

    return {("GET", OSMAND_PATH): serve_osmand, ("POST", OSMAND_PATH): serve_osmand}


def position_components(settings: Settings) -> list[Any]:
    from .batcher import IngestBatcher
    from .staleness import StalenessLeader

    return [IngestBatcher(writers=settings.ingest.ingest_writers), StalenessLeader()]
