"""Feed ingesters in the server: the PostgreSQL sink, the leader component, ``/v1/feeds``, boundaries.

The pure parsing/fetching/scheduling lives in the top-level :mod:`feeds` package; this package
is its I/O: where items are stored, who polls, and how admins manage feeds.
"""

from __future__ import annotations

from typing import Any

from .controller import FeedController
from .leader import FeedLeader


def feed_handlers() -> list[Any]:
    return [FeedController]


def feed_components() -> list[Any]:
    return [FeedLeader()]


__all__ = ["FeedController", "FeedLeader", "feed_components", "feed_handlers"]
