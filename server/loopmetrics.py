"""Lock-free metrics for the request path, exposed through prometheus_client.

prometheus_client's metrics take a lock on every update, and its histogram walks
its buckets in Python; on the append path that cost several microseconds per
request. The server updates these only from its event loop thread and renders
``/metrics`` from the same thread, so no lock is needed: :class:`LoopHistogram`
counts with a bisect into a plain list, :class:`LoopCounter` into a dict keyed
by label values, and both render the standard series when the registry is
collected.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LoopCounter", "LoopHistogram"]


class LoopCounter(Collector):
    """A labelled counter for single-threaded (event loop) use.

    Args:
        name: Metric name without ``_total``.
        documentation: Help text.
        labels: Label names; :meth:`inc` takes their values in order.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the series with label values ``key``."""
        self.values[key] = self.values.get(key, 0.0) + amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        """One ``<name>_total`` series per label combination seen."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        yield family


class LoopHistogram(Collector):
    """An unlabelled histogram for single-threaded (event loop) use.

    Args:
        name: Full metric name (without ``_bucket``/``_sum``/``_count``).
        documentation: Help text.
        buckets: Upper bounds, ascending; ``+Inf`` is added.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [float(b) for b in buckets]
        if self.bounds != sorted(self.bounds):
            raise ValueError("histogram buckets must be ascending")
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (``value <= bound`` lands in that bucket)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The cumulative buckets, sum and count, as prometheus_client expects."""
        cumulative = []
        total = 0
        for bound, count in zip([*self.bounds, float("inf")], self.counts, strict=True):
            total += count
            label = "+Inf" if bound == float("inf") else _format(bound)
            cumulative.append((label, float(total)))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative, self.sum)
        yield family


def _format(bound: float) -> str:
    return repr(float(bound))
