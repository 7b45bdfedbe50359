"""Prometheus metrics of one app, on one registry that other modules can add to.

Every app gets its own :class:`prometheus_client.CollectorRegistry` (so two
apps in one process never collide). Route modules and consumers add their own
metrics through :meth:`Metrics.counter`, :meth:`Metrics.gauge` and
:meth:`Metrics.histogram`, which return the existing metric when asked for a
name twice::

    metrics = metrics_of(request.app)           # or websocket.app
    sent = metrics.counter("firehose_events_sent", "Events pushed to clients", ["stream"])
    sent.labels(stream).inc()

``GET /metrics`` refreshes the gauges that need the log (consumer lag) and
then renders the registry in the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.applications import Starlette

from consumers.parking import parked_counts
from consumers.spec import ConsumerStatus
from eventlog import EventLog, StreamNotFound
from eventlog.repair import repair_counts
from server.loopmetrics import LoopCounter, LoopHistogram

__all__ = ["Metrics", "metrics_of"]

_M = TypeVar("_M", bound=MetricWrapperBase)

#: Latency buckets in seconds: an fsync costs ~0.2 ms, a loaded batch ~10s of ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """The metrics of one eventlog app.

    Attributes:
        registry: The registry ``/metrics`` renders; register anything on it.
        appends: Events appended, by stream (``eventlog_appended_events_total``).
        append_latency: Seconds from request decoded to offsets durable.
        batch_size: Events per append request.
        consumer_lag: Events between each consumer's committed offset and the head.
        consumer_parked: Events waiting in each consumer's parked stream.
        retention_held: Events retention keeps for each lagging consumer (and bytes).
        http_requests: HTTP requests by method, route template and status.
        repaired: Stored events sent repaired because they were not UTF-8, by
            surface (``eventlog_events_repaired_total``; see :mod:`eventlog.repair`).
    """

    def __init__(self, log: EventLog, prefix: str = "eventlog") -> None:
        self.log = log
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, MetricWrapperBase] = {}
        self.appends = self.loop_counter("appended_events", "Events appended", ["stream"])
        self.append_latency = self.loop_histogram(
            "append_latency_seconds",
            "Seconds from a decoded append request to durable offsets",
            buckets=LATENCY_BUCKETS,
        )
        self.batch_size = self.loop_histogram(
            "append_batch_size", "Events per append request", buckets=BATCH_BUCKETS
        )
        self.consumer_lag = self.gauge(
            "consumer_lag_events",
            "Events between a consumer's committed offset and the stream head",
            ["consumer", "stream"],
        )
        self.consumer_parked = self.gauge(
            "consumer_parked_events",
            "Events waiting in a consumer's parked stream (<consumer>.parked)",
            ["consumer"],
        )
        self.consumer_state = self.gauge(
            "consumer_state",
            "1 for the state each consumer running in this server is in",
            ["consumer", "state"],
        )
        self.consumer_failures = self.gauge(
            "consumer_failures",
            "Failed handler calls of each consumer in this server",
            ["consumer"],
        )
        self.retention_held = self.gauge(
            "retention_held_events",
            "Events retention keeps only because a named consumer has not read them",
            ["stream", "consumer"],
        )
        self.retention_held_bytes = self.gauge(
            "retention_held_bytes",
            "Payload bytes of those events (estimated from the stream's average event size)",
            ["stream", "consumer"],
        )
        self.writer = self.gauge(
            "writer",
            "Group-commit writer counters (transactions, events_written, queued_events)",
            ["counter"],
        )
        self.http_requests = self.loop_counter(
            "http_requests", "HTTP requests", ["method", "route", "status"]
        )
        self.repaired = self.loop_counter(
            "events_repaired",
            "Stored events sent repaired (bytes not UTF-8 replaced), by surface",
            ["surface"],
        )

    def _get(self, cls: type[_M], name: str, doc: str, labels: Sequence[str], **kw: Any) -> _M:
        existing = self._metrics.get(name)
        if existing is not None:
            if not isinstance(existing, cls):
                raise ValueError(f"metric {name!r} exists as a {type(existing).__name__}")
            return existing
        metric = cls(name, doc, list(labels), namespace=self.prefix, registry=self.registry, **kw)
        self._metrics[name] = metric
        return metric

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        """A counter ``<prefix>_<name>_total`` on this registry (the same one if asked twice)."""
        return self._get(Counter, name, doc, labels)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        """A gauge ``<prefix>_<name>`` on this registry."""
        return self._get(Gauge, name, doc, labels)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        """A histogram ``<prefix>_<name>`` on this registry."""
        return self._get(Histogram, name, doc, labels, buckets=tuple(buckets))

    def loop_histogram(
        self, name: str, doc: str, *, buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> LoopHistogram:
        """An unlabelled, lock-free histogram ``<prefix>_<name>`` for code running on
        the event loop thread only (see :mod:`server.loopmetrics`)."""
        histogram = LoopHistogram(f"{self.prefix}_{name}", doc, buckets)
        self.registry.register(histogram)
        return histogram

    def loop_counter(self, name: str, doc: str, labels: Sequence[str]) -> LoopCounter:
        """A labelled, lock-free counter ``<prefix>_<name>_total`` for code running on
        the event loop thread only (see :mod:`server.loopmetrics`)."""
        counter = LoopCounter(f"{self.prefix}_{name}", doc, labels)
        self.registry.register(counter)
        return counter

    def appended(self, stream: str, count: int) -> None:
        """Count ``count`` events appended to ``stream``."""
        self.appends.inc((stream,), count)

    async def refresh(self, statuses: Sequence[ConsumerStatus] = ()) -> None:
        """Update the gauges computed from the log (consumer lag, writer counters)
        and from the consumers running in this server (``statuses``)."""
        self.consumer_state.clear()
        self.consumer_failures.clear()
        for status in statuses:
            self.consumer_state.labels(status.name, status.state).set(1)
            self.consumer_failures.labels(status.name).set(status.failures)
        for name, value in self.log.writer_stats.items():
            self.writer.labels(name).set(value)
        self.repaired.values = {(k,): float(n) for k, n in repair_counts().items()}
        streams = await self.log.streams()
        heads = {info.name: info.next_offset for info in streams}
        offsets = await self.log.consumers()
        self.consumer_lag.clear()
        for consumer in offsets:
            head = heads.get(consumer.stream, 0)
            self.consumer_lag.labels(consumer.name, consumer.stream).set(
                max(head - consumer.offset, 0)
            )
        self.consumer_parked.clear()
        for name, count in parked_counts(streams, offsets).items():
            self.consumer_parked.labels(name).set(count)
        self.retention_held.clear()
        self.retention_held_bytes.clear()
        for info in streams:
            if info.retention.unlimited:
                continue  # nothing to trim, nothing held
            try:
                plan = await self.log.retention_holds(info.name)
            except StreamNotFound:  # deleted meanwhile
                continue
            for hold in plan.holds:
                self.retention_held.labels(info.name, hold.consumer).set(hold.events)
                self.retention_held_bytes.labels(info.name, hold.consumer).set(hold.bytes)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)


def metrics_of(app: Starlette) -> Metrics:
    """The :class:`Metrics` of an eventlog app (``request.app`` or ``websocket.app``)."""
    metrics: Metrics = app.state.metrics
    return metrics
