"""Long tests first, so that the xdist workers finish together.

The suite runs with ``--dist loadfile --no-loadscope-reorder``: each worker
takes whole modules, in collection order, as it runs out of work (a module's
tests stay on one worker, in their order, sharing its module-scoped fixtures;
some count on what the earlier ones left there). With the modules that hold
the longest tests at the front, that is the longest-processing-time-first
rule: no worker starts a minute-long test while the others are about to run
dry.

How long a module takes is read from the previous run (pytest's cache, key
:data:`CACHE_KEY`), else from :data:`MODULE_TIMES` (committed), else the tests
marked ``slow`` count :data:`LONG` each. A module keeps its tests' order. The
order is a pure function of the collection, the file and the cache, which are
the same on every worker (xdist refuses workers that collected differently).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

__all__ = [
    "CACHE_KEY",
    "LONG",
    "MODULE_TIMES",
    "DurationsSeen",
    "long_first",
    "module_of",
    "stored_durations",
]

#: Where the durations of the last run are kept (``.pytest_cache``).
CACHE_KEY = "eventlog/durations"
#: Seconds a test marked ``slow`` counts when no time of it is known.
LONG = 2.0
#: Seconds each module took in one whole run, committed so that a fresh
#: checkout starts in a good order too (``python -m tests.ordering`` rewrites it
#: from the cache).
MODULE_TIMES = Path(__file__).with_name("module_times.json")


def module_of(nodeid: str) -> str:
    """``tests/x/test_y.py`` of ``tests/x/test_y.py::test_z[param]``."""
    return nodeid.split("::", 1)[0]


def long_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """``items`` module by module, the modules that take longest first.

    ``seconds`` holds test durations by node id and module durations by path
    (the committed :data:`MODULE_TIMES`); a test without either counts
    :data:`LONG` when marked ``slow``. A module keeps its tests' order, and
    modules that took no time keep their collection order.
    """
    totals: dict[str, float] = {}
    for item in items:
        module = module_of(item.nodeid)
        if item.nodeid in seconds:
            took = seconds[item.nodeid]
        elif module in seconds:
            took = 0.0  # counted once below
        else:
            took = LONG if item.get_closest_marker("slow") is not None else 0.0
        totals[module] = totals.get(module, seconds.get(module, 0.0)) + took
    return sorted(items, key=lambda item: -totals[module_of(item.nodeid)])  # stable


def stored_durations(config: pytest.Config) -> dict[str, float]:
    """Module times from :data:`MODULE_TIMES`, then test times from the last run's cache."""
    seconds: dict[str, float] = {}
    with contextlib.suppress(OSError, ValueError):
        seconds.update(json.loads(MODULE_TIMES.read_text()))
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    stored = cache.get(CACHE_KEY, {}) if cache is not None else {}
    if isinstance(stored, dict) and stored:
        cached = {module_of(nodeid) for nodeid in stored}
        seconds = {m: t for m, t in seconds.items() if m not in cached}
        seconds.update(stored)
    return seconds


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


def write_module_times(cache_file: Path) -> None:
    """Sum the cached test durations by module into :data:`MODULE_TIMES`."""
    tests: dict[str, float] = json.loads(cache_file.read_text())
    modules: dict[str, float] = {}
    for nodeid, took in tests.items():
        modules[module_of(nodeid)] = modules.get(module_of(nodeid), 0.0) + took
    ordered = {m: round(t, 1) for m, t in sorted(modules.items())}
    MODULE_TIMES.write_text(json.dumps(ordered, indent=0) + "\n")


if __name__ == "__main__":  # python -m tests.ordering [.pytest_cache/v/eventlog/durations]
    write_module_times(Path(sys.argv[1] if len(sys.argv) > 1 else ".pytest_cache/v/" + CACHE_KEY))
