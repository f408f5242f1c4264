"""A small per-worker cache whose entries expire after a fixed time (and which empties when full).

Used where the hot path would otherwise ask PostgreSQL per request for something that rarely
changes: device tokens, user rows, responder teams. A cached ``None`` (not found) is a value too.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MISSING: object = object()
"""What :meth:`TtlCache.get` answers for a key it does not hold (or holds no longer)."""


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, now: float | None = None) -> V | object:
        hit = self._entries.get(key)
        if hit is None or hit[0] <= (time.monotonic() if now is None else now):
            return MISSING
        return hit[1]

    def put(self, key: K, value: V, now: float | None = None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = ((time.monotonic() if now is None else now) + self.ttl_s, value)

    def forget(self, key: K | None = None) -> None:
        """Drop one key, or everything when ``key`` is None."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
