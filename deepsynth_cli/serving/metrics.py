"""Prometheus metrics, in a registry per app (several apps in one process, as in tests, do not collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "deepsynth_requests", "HTTP requests by route template and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "deepsynth_request_seconds", "HTTP request latency", ["route"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.errors = Counter(
            "deepsynth_errors", "requests answered with an error, by error code", ["code"], registry=r
        )
        self.documents = Counter("deepsynth_documents", "documents summarised", registry=r)
        self.batch_size = Histogram(
            "deepsynth_batch_size", "documents per model call", buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "deepsynth_batch_seconds", "duration of one model call", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("deepsynth_queue_depth", "documents waiting or being summarised", registry=r)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.documents.inc(size)
