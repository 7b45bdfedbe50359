"""Pluggable consumer kinds: the ``eventlog.consumers`` entry-point group.

A *kind* is a factory that turns an instance's options into a handler::

    # in your package's pyproject.toml
    [project.entry-points."eventlog.consumers"]
    audit = "mypackage.audit:make_handler"

    # mypackage/audit.py
    def make_handler(log: EventLog, options: dict[str, Any]) -> Handler:
        path = options["path"]
        async def handle(events: list[Event]) -> None: ...
        return handle

Instances are declared in the server's config file (``[[consumers]]``) or
added in code with :func:`add_instances`; each becomes a named consumer in a
:class:`~consumers.runtime.ConsumerManager`. A ``kind`` written
``"package.module:factory"`` names a factory by import path instead, for a
kind that is not packaged with an entry point.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, cast

import msgspec

from consumers.parking import OnFailure
from consumers.runtime import ConsumerManager, Handler, TransactionalHandler
from consumers.shared.spec import AckWait, MaxDeliver
from eventlog import BEGINNING, END, Event, EventLog

__all__ = ["ConsumerInstance", "Kind", "add_instances", "builtin_kinds", "load_kinds"]

logger = logging.getLogger("eventlog.consumers")

Kind = Callable[[EventLog, dict[str, Any]], Handler | TransactionalHandler]
"""A consumer kind: ``factory(log, options) -> handler`` (a transactional handler
for an instance declared ``transactional = true``)."""

GROUP = "eventlog.consumers"


class ConsumerInstance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One declared consumer: which kind, over which stream, with which options.

    Attributes:
        name: Unique consumer name (its committed offset is stored under it).
        kind: A kind name from :func:`load_kinds`.
        stream: The stream to read.
        types: Patterns of event types to pass (all if empty), in the dialect
            of :mod:`consumers.filter`.
        key: Only events whose key matches this pattern.
        batch_size: Most events per handler call.
        start: Where a consumer that never committed begins.
        max_attempts: Failed handler calls before ``on_failure`` applies.
        on_failure: ``"park"``, ``"stop"`` or ``"retry"`` (see :mod:`consumers.failure`).
        protect: Whether retention keeps what it has not read (default: the server's).
        max_hold: Seconds without a commit before it stops holding retention.
        reset: ``"earliest"``, ``"latest"`` or ``"error"``: where it goes when
            retention removed events it had not read.
        transactional: The kind's handler is ``handler(events, tx)`` and its
            writes through ``tx`` commit with the offset (exactly-once).
        options: Passed to the kind's factory.
        shared: A shared consumer instead (no kind, no handler: workers claim
            its events, see :mod:`consumers.shared`), with ``ack_wait``,
            ``max_deliver`` and ``ordered_by_key``; ``types``, ``key`` and
            ``start`` apply to it too.
        ack_wait: Shared: seconds a claim lasts.
        max_deliver: Shared: hand-outs of one event before it is parked.
        ordered_by_key: Shared: order within a key, concurrency across keys.
    """

    name: str
    kind: str = ""
    stream: str
    types: list[str] = []
    key: str | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1)] = 100
    start: Literal["beginning", "end"] = "beginning"
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 5
    on_failure: OnFailure = "park"
    protect: bool | None = None
    max_hold: float | None = None
    reset: Literal["earliest", "latest", "error"] = "earliest"
    transactional: bool = False
    options: dict[str, Any] = {}
    shared: bool = False
    ack_wait: AckWait = 30.0
    max_deliver: MaxDeliver = 5
    ordered_by_key: bool = False

    def __post_init__(self) -> None:
        if self.shared and self.kind:
            raise ValueError(f"consumer {self.name!r}: a shared consumer has no kind")
        if not self.shared and not self.kind:
            raise ValueError(f"consumer {self.name!r}: kind is required (or shared = true)")


def _log_kind(log: EventLog, options: dict[str, Any]) -> Handler:
    """Built-in ``log`` kind: writes each event to the ``eventlog.consumers`` logger."""
    level = logging.getLevelName(str(options.get("level", "INFO")).upper())
    if not isinstance(level, int):
        raise ValueError(f"log consumer: unknown level {options.get('level')!r}")

    async def handle(events: list[Event]) -> None:
        for event in events:
            data = bytes(event.data).decode()
            logger.log(level, "%s@%d %s %s", event.stream, event.offset, event.type, data)

    return handle


def builtin_kinds() -> dict[str, Kind]:
    """The kinds eventlog ships."""
    return {"log": _log_kind}


def load_kinds() -> dict[str, Kind]:
    """Built-in kinds plus every kind registered under the ``eventlog.consumers`` group."""
    kinds = builtin_kinds()
    for entry in importlib.metadata.entry_points(group=GROUP):
        try:
            kinds[entry.name] = entry.load()
        except Exception as exc:  # a broken plugin must not take the server down
            logger.error("cannot load consumer kind %r (%s): %s", entry.name, entry.value, exc)
    return kinds


def add_instances(
    manager: ConsumerManager,
    log: EventLog,
    instances: Iterable[ConsumerInstance],
    kinds: Mapping[str, Kind] | None = None,
) -> None:
    """Build each instance's handler from its kind and register it with the manager.

    Raises:
        ValueError: An unknown kind, or a kind that refuses the options.
    """
    kinds = load_kinds() if kinds is None else kinds
    for instance in instances:
        if instance.shared:
            continue  # workers claim its events (server.consumer_runtime declares it)
        factory = kinds.get(instance.kind)
        if factory is None and ":" in instance.kind:
            factory = _import_kind(instance.name, instance.kind)
        if factory is None:
            known = ", ".join(sorted(kinds)) or "none"
            raise ValueError(
                f"consumer {instance.name!r}: unknown kind {instance.kind!r} (known: {known})"
            )
        handler = factory(log, dict(instance.options))
        manager.add(
            instance.name,
            instance.stream,
            handler,
            types=instance.types,
            key=instance.key,
            batch_size=instance.batch_size,
            start=BEGINNING if instance.start == "beginning" else END,
            max_attempts=instance.max_attempts,
            on_failure=instance.on_failure,
            protect=instance.protect,
            max_hold=instance.max_hold,
            reset=instance.reset,
            transactional=instance.transactional,
        )


def _import_kind(name: str, path: str) -> Kind:
    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as exc:  # `eventlog serve` does not look in its working directory
        raise ValueError(
            f"consumer {name!r}: cannot import kind {path!r}: {exc} (the module must be on the "
            "server's Python path: install it, or start the server with PYTHONPATH set to its "
            "directory)"
        ) from exc
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"consumer {name!r}: cannot import kind {path!r}: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"consumer {name!r}: kind {path!r} is not callable")
    return cast(Kind, factory)
