"""Prometheus metrics of the stream (multiprocess-safe: counters and livesum gauges)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

VIEWERS = Gauge("sitrep_stream_viewers", "Connected stream viewers", ["transport"], multiprocess_mode="livesum")
GROUPS = Gauge(
    "sitrep_stream_groups",
    "Subscription groups (viewers with the same topics, area, rate, scope and encoding share one and its frames)",
    multiprocess_mode="livesum",
)
DROPPED = Counter("sitrep_stream_viewers_dropped", "Viewers closed because they fell behind")
REDIS_RECONNECTS = Counter("sitrep_stream_redis_reconnects", "Times the stream's Redis subscriber reconnected")
TICKS_PUBLISHED = Counter("sitrep_stream_ticks_published", "Ticks this worker published to Redis")
PUBLISH_ERRORS = Counter("sitrep_stream_publish_errors", "Ticks that could not be published (history lost)")
BATCHES_RECEIVED = Counter("sitrep_stream_batches_received", "Batches received from Redis")
FRAMES = Counter("sitrep_stream_frames", "Delta frames queued to viewers")
RESUMES = Counter("sitrep_stream_resumes", "Resume requests by outcome", ["outcome"])
RESYNCS = Counter("sitrep_stream_resyncs", "Epoch changes or gaps that forced fresh snapshots")
