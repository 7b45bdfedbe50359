"""Metrics updated on the event loop render as prometheus_client's own do."""

from __future__ import annotations

import pytest


def test_loop_histogram_renders_like_prometheus_histogram() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from server.loopmetrics import LoopHistogram

    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LoopHistogram("x_seconds", "doc", [0.1, 1, 2.5])
    ours_registry.register(ours)
    theirs = Histogram("x_seconds", "doc", buckets=[0.1, 1, 2.5], registry=theirs_registry)
    for value in (0.05, 0.1, 0.5, 1, 3, 2.5, 0):
        ours.observe(value)
        theirs.observe(value)
    expected = [
        line
        for line in generate_latest(theirs_registry).decode().splitlines()
        if "_created" not in line
    ]
    assert generate_latest(ours_registry).decode().splitlines() == expected
    with pytest.raises(ValueError, match="ascending"):
        LoopHistogram("y", "doc", [2, 1])
