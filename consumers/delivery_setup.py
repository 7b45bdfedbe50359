"""Assembly of the delivery engine: its target kinds, sender and ledger, and the
endpoints a config file declares.

:func:`start_engine` is what a server (or any program embedding the log)
calls: the ``webhook`` kind and the notification kinds (``discord``,
``slack``, ``apprise``, with their pacing sender) on the ledger that goes
with the log's backend; endpoints declared in the config file
(``[[webhooks.endpoints]]`` and ``[[notifications.targets]]``) are created or
updated before it returns. The server's lifespan (``server/api/webhook_engine.py``)
only adds metrics and the routes' access to the engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.kinds import AttemptHook, TargetKind
from consumers.delivery.model import Endpoint
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget, check_url
from consumers.delivery.stores import ledger_for
from consumers.notify.apprise import check_apprise_url
from consumers.notify.spec import NotificationsConfig, notify_setup
from consumers.webhook import WEBHOOK, SpecError, WebhooksConfig, declared_endpoint
from eventlog import EventLog
from eventlog.errors import InvalidStreamName
from eventlog.sealed import SecretBox

__all__ = ["apply_declared", "check_target", "start_engine", "stream_bounds"]

logger = logging.getLogger("eventlog.delivery")


async def start_engine(
    log: EventLog,
    webhooks: WebhooksConfig,
    notifications: NotificationsConfig,
    *,
    secrets: SecretBox | None = None,
    on_attempt: AttemptHook | None = None,
) -> DeliveryEngine | None:
    """A started engine with every built-in target kind and the declared endpoints;
    None when delivery is off (``[webhooks] enabled = false``, or a durable
    backend without a ledger: logged).

    Raises:
        RuntimeError: A declared endpoint is invalid (the message names it).
    """
    if not webhooks.enabled:
        return None
    try:
        store = ledger_for(log, secrets=secrets)
    except ValueError as exc:
        logger.warning("webhook delivery is off: %s", exc)
        return None
    notify = notify_setup(allow_private=webhooks.allow_private_targets)
    kinds: dict[str, TargetKind] = {"webhook": WEBHOOK, **notify.kinds}
    engine = DeliveryEngine(
        log,
        store,
        kinds=kinds,
        sender=notify.sender,
        allow_private=webhooks.allow_private_targets,
        system_stream=webhooks.system_stream,
        on_attempt=on_attempt,
        keep_history=webhooks.keep_history,
    )
    await engine.start()
    try:
        await apply_declared(engine, webhooks, notifications)
    except BaseException:
        await engine.close()
        raise
    return engine


async def check_target(endpoint: Endpoint, *, allow_private: bool) -> None:
    """The SSRF guard for an endpoint's URL (for an Apprise target, the host its
    Apprise URL reaches: :func:`~consumers.notify.apprise.check_apprise_url`).

    Raises:
        InvalidTarget, UnsafeTarget: As :func:`~consumers.delivery.ssrf.check_url`,
            naming the request field ``$.url``.
    """
    try:
        if endpoint.kind == "apprise":
            await check_apprise_url(str(endpoint.options["url"]), allow_private=allow_private)
        else:
            await check_url(endpoint.url, allow_private=allow_private)
    except InvalidTarget as exc:  # UnsafeTarget too
        exc.json_path = "$.url"
        raise


async def apply_declared(
    engine: DeliveryEngine, webhooks: WebhooksConfig, notifications: NotificationsConfig
) -> None:
    """Create or update the endpoints and targets declared in the config file.

    Raises:
        RuntimeError: One is invalid, unsafe, or declared twice.
    """
    targets = notifications.targets
    clash = {str(e.id) for e in webhooks.endpoints} & {str(t.id) for t in targets}
    if clash:
        raise RuntimeError(
            f"config file: {sorted(clash)!r} declared both as webhook endpoint and notification"
        )
    declared: list[tuple[str, Endpoint]] = []
    now = time.time()
    families: list[tuple[str, Sequence[Any], Callable[..., Endpoint]]] = [
        ("webhook endpoint", webhooks.endpoints, declared_endpoint),
        ("notification target", targets, declared_endpoint),
    ]
    for what, specs, build in families:
        for spec in specs:
            assert spec.id is not None
            existing = await engine.store.get_endpoint(spec.id)
            head, first = await stream_bounds(engine, spec.stream)
            try:
                endpoint = build(spec, existing, now=now, head=head, first=first)
            except SpecError as exc:
                raise RuntimeError(f"{what} {spec.id!r} in the config file: {exc}") from exc
            declared.append((what, endpoint))
    for what, endpoint in declared:
        try:
            await check_target(endpoint, allow_private=webhooks.allow_private_targets)
        except (InvalidTarget, UnsafeTarget) as exc:
            raise RuntimeError(f"{what} {endpoint.id!r} in the config file: {exc}") from exc
        await engine.put_endpoint(endpoint)


async def stream_bounds(engine: DeliveryEngine, stream: str) -> tuple[int, int]:
    """``(head, first offset)`` of a stream; ``(0, 0)`` when it does not exist yet,
    or cannot (a bad name: the endpoint's own checks then say why)."""
    try:
        first, head = await engine.log.bounds(stream)
    except InvalidStreamName:
        return 0, 0
    return head, first
