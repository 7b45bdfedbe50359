"""Long tests first, so that the xdist workers finish together.

The suite runs with ``--dist load --maxschedchunk 1``: each worker takes the
next test from the front of the collection as it frees up. With the longest
tests at the front, that is the longest-processing-time-first rule: no worker
starts a minute-long test while the others are about to run dry.

How long a test takes is read from the previous run (pytest's cache, key
:data:`CACHE_KEY`); a fresh checkout has no cache, and then the tests marked
``slow`` count as long. Modules move as a whole, their tests in their order;
the other modules keep their collection order. The order is a pure function of
the collection and the cache, which is the same on every worker (xdist refuses
workers that collected differently).
"""

from __future__ import annotations

import pytest

__all__ = ["CACHE_KEY", "LONG", "DurationsSeen", "long_first", "stored_durations"]

#: Where the durations of the last run are kept (``.pytest_cache``).
CACHE_KEY = "eventlog/durations"
#: Seconds (setup + call + teardown) from which a test counts as long.
LONG = 2.0


def long_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """``items`` with the modules that hold a long test first, longest first.

    A module moves as a whole and keeps its tests' order: tests that share a
    module-scoped server may count on what the earlier ones left there.
    """

    def length(item: pytest.Item) -> float:
        if item.nodeid in seconds:
            return seconds[item.nodeid]
        return LONG if item.get_closest_marker("slow") is not None else 0.0

    longest: dict[str, float] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        longest[module] = max(longest.get(module, 0.0), length(item))

    def key(item: pytest.Item) -> tuple[float, str]:
        module = item.nodeid.split("::")[0]
        return (-longest[module], module) if longest[module] >= LONG else (0.0, "")

    return sorted(items, key=key)  # stable: within a module, and for the rest, as collected


def stored_durations(config: pytest.Config) -> dict[str, float]:
    """Each test's seconds in the last run that ran it (empty without a cache)."""
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    if cache is None:
        return {}
    stored = cache.get(CACHE_KEY, {})
    return stored if isinstance(stored, dict) else {}


class DurationsSeen:
    """Adds up each test's phases; stores them in the cache at the end (xdist controller)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(session.config, "cache", None)
        if cache is None or not self.seconds:
            return
        merged = dict(cache.get(CACHE_KEY, {}))
        merged.update({k: round(v, 3) for k, v in self.seconds.items()})
        cache.set(CACHE_KEY, merged)
