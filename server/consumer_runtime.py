"""The server's handler consumers: instances declared in ``[[consumers]]`` of the config.

Each instance names a kind (built-in, or plugged in through the
``eventlog.consumers`` entry-point group, see :mod:`consumers.registry`) and
runs in a :class:`~consumers.runtime.ConsumerManager` for the server's life;
on shutdown each finishes its batch in hand and commits.
"""

from __future__ import annotations

from starlette.applications import Starlette

from consumers.registry import add_instances
from consumers.runtime import ConsumerManager

__all__ = ["start", "stop"]


async def start(app: Starlette) -> None:
    """Build and start the configured consumers (none configured: nothing runs)."""
    instances = app.state.config.consumers
    if not instances:
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
