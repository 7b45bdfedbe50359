"""The server's handler consumers: instances declared in ``[[consumers]]`` of the config.

Each instance names a kind (built-in, or plugged in through the
``eventlog.consumers`` entry-point group, see :mod:`consumers.registry`) and
runs in a :class:`~consumers.runtime.ConsumerManager` for the server's life;
on shutdown each finishes its batch in hand and commits. An instance with
``shared = true`` is a shared consumer instead: declared at start-up (created,
or changed to match the file), its events claimed by workers over HTTP.
"""

from __future__ import annotations

from starlette.applications import Starlette

from consumers.registry import add_instances
from consumers.runtime import ConsumerManager
from consumers.shared import SharedSpec
from server.api.shared_consumers import shared_consumers

__all__ = ["start", "stop"]


async def start(app: Starlette) -> None:
    """Build and start the configured consumers (none configured: nothing runs);
    declare the shared ones (``shared = true``)."""
    instances = app.state.config.consumers
    shared = [i for i in instances if i.shared]
    app.state.shared_in_config = frozenset(i.name for i in shared)
    if shared:
        consumers = await shared_consumers(app)
        for i in shared:
            spec = SharedSpec(
                stream=i.stream,
                types=i.types,
                key=i.key,
                ack_wait=i.ack_wait,
                max_deliver=i.max_deliver,
                ordered_by_key=i.ordered_by_key,
                start=i.start,
            )
            await consumers.declare(i.name, spec)
    if not any(not i.shared for i in instances):
        app.state.consumer_manager = None
        return
    manager = ConsumerManager(app.state.log)
    add_instances(manager, app.state.log, instances)
    await manager.start()
    app.state.consumer_manager = manager


async def stop(app: Starlette) -> None:
    """Let every consumer finish its batch in hand and commit."""
    manager: ConsumerManager | None = getattr(app.state, "consumer_manager", None)
    if manager is not None:
        await manager.shutdown()
