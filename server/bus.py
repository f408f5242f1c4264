"""The change bus: how every area announces a committed change to live viewers.

Areas call :meth:`ChangeBus.publish` *after* their transaction committed (never before: a viewer
must not see what may still roll back). The stream hub (``server/stream``) listens, coalesces
changes into ticks, fans them out across workers through Redis and serves viewers.

``publish`` never blocks and never awaits: it hands the change to listeners synchronously, and
listeners must only enqueue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("sitrep.bus")

TOPICS = ("positions", "incidents", "hazards", "fence_events", "alerts", "feeds")


@dataclass(slots=True)
class Change:
    topic: str
    """One of TOPICS."""
    key: str
    """The object's id; within a tick only the newest change per (topic, key) is kept."""
    data: dict[str, Any]
    """The object's new state (or ``{"id": ..., "deleted": True}``)."""
    accepted_at: float = field(default_factory=time.time)
    """Server time (unix seconds) the change was accepted, for end-to-end latency."""
    lon: float | None = None
    lat: float | None = None
    """A point locating the change, for area subscriptions (None: visible in every area)."""
    bbox: tuple[float, float, float, float] | None = None
    """Or a bounding box (min_lon, min_lat, max_lon, max_lat) for areas such as hazards."""
    team_id: str | None = None
    """Owning team, for role scoping (responders see their team)."""
    responder_ids: tuple[str, ...] = ()
    """Responders concerned (assignments), for role scoping."""
    public: bool = False
    """Visible to viewers (public hazards and alerts)."""


Listener = Callable[[list[Change]], None]


class ChangeBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, changes: list[Change] | Change) -> None:
        batch = changes if isinstance(changes, list) else [changes]
        if not batch:
            return
        for listener in list(self._listeners):
            try:
                listener(batch)
            except Exception:
                log.exception("change listener failed")
