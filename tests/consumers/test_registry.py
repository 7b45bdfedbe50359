"""Consumer kinds from entry points and declared instances."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

from consumers import ConsumerManager
from consumers.registry import ConsumerInstance, add_instances, load_kinds
from consumers.runtime import Handler
from eventlog import Event, EventLog
from tests.support import scaled


def test_builtin_log_kind_is_always_available() -> None:
    assert "log" in load_kinds()


def test_instances_decode_from_config_and_refuse_unknown_fields() -> None:
    text = b'{"name": "audit", "kind": "log", "stream": "orders", "types": ["order.*"]}'
    instance = msgspec.json.decode(text, type=ConsumerInstance)
    assert (instance.name, instance.start, instance.types) == ("audit", "beginning", ["order.*"])
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(text[:-1] + b', "color": 1}', type=ConsumerInstance)


async def test_declared_instance_of_a_plugged_kind_handles_events(memory_log: EventLog) -> None:
    seen: list[tuple[str, int]] = []

    def collect(log: EventLog, options: dict[str, Any]) -> Handler:
        async def handle(events: list[Event]) -> None:
            seen.extend((options["tag"], e.offset) for e in events)

        return handle

    manager = ConsumerManager(memory_log, poll_timeout=0.1)
    instance = ConsumerInstance(name="c", kind="collect", stream="s", options={"tag": "x"})
    add_instances(manager, memory_log, [instance], kinds={"collect": collect})
    await memory_log.append("s", 1, type="t")
    async with manager:
        for _ in range(int(scaled(500))):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert seen == [("x", 0)]


async def test_unknown_kind_is_refused_with_the_known_ones(memory_log: EventLog) -> None:
    manager = ConsumerManager(memory_log)
    with pytest.raises(ValueError, match=r"unknown kind 'nope' \(known: log\)"):
        add_instances(
            manager, memory_log, [ConsumerInstance(name="c", kind="nope", stream="s")], kinds=None
        )


async def test_log_kind_writes_events_to_the_logger(
    memory_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    manager = ConsumerManager(memory_log, poll_timeout=0.1)
    add_instances(manager, memory_log, [ConsumerInstance(name="c", kind="log", stream="s")])
    await memory_log.append("s", {"a": 1}, type="t.x")
    with caplog.at_level(logging.INFO, logger="eventlog.consumers"):
        async with manager:
            for _ in range(int(scaled(500))):
                if manager.status()[0].committed == 1:
                    break
                await asyncio.sleep(0.01)
    assert 's@0 t.x {"a":1}' in caplog.text
