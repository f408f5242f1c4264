"""Consuming ``positions`` in commit order by ``seq`` when sequence numbers commit out of order.

``seq`` comes from a sequence, so a transaction can take seq 10, another take 11 and commit first:
for a moment 11 is visible and 10 is not. Reading "everything after the last seq seen" would then
skip 10 forever. The rule used here (chosen over ``pg_snapshot_xmin`` logic, which breaks when a
transaction takes its seq before it has an xid, and stalls behind any long unrelated transaction):

* rows are consumed in ``seq`` order only while they are contiguous;
* a hole is skipped once a higher seq has been visible for ``grace_s`` (the hole was a rolled-back
  transaction, or a sequence cache lost in a crash). Ingest transactions are short (a few ms), so
  a grace of a couple of seconds only costs latency after a real rollback.

A position committed more than ``grace_s`` after a higher seq became visible would be skipped by
the evaluator (it is still stored); ``skipped`` counts holes so monitoring can see them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any


class GapTracker:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._seen: deque[tuple[float, int]] = deque()
        self._horizon = 0
        self.skipped = 0

    def consumable(self, read_seq: int, rows: Sequence[Any], now: float) -> int:
        """How many leading ``rows`` (sorted by ``["seq"]``, all > ``read_seq``) may be consumed now."""
        if rows:
            self._seen.append((now, int(rows[-1]["seq"])))
        while self._seen and now - self._seen[0][0] >= self.grace_s:
            self._horizon = max(self._horizon, self._seen.popleft()[1])
        expected = read_seq + 1
        n = 0
        for row in rows:
            seq = int(row["seq"])
            if seq != expected:
                if seq - 1 > self._horizon:
                    break
                self.skipped += seq - expected
            expected = seq + 1
            n += 1
        return n
