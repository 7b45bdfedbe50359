"""An Apprise target that an older version stored with several URLs in one ``url``
(before the one-URL rule, 2c21184) is disabled when its pump would start, with a
``disabled_reason`` that says what is wrong and how to split it; it is not left
failing each attempt as an "internal error". Real SQLite files, the real engine,
real Apprise notifying local receivers, and a real server with the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.kinds import TargetRefused
from consumers.delivery.model import Endpoint
from consumers.delivery.stores import ledger_for
from consumers.notify import NotifySpec, notify_kinds, notify_setup
from consumers.webhook import build_endpoint
from eventlog import EventLog
from tests.consumers.delivery.receiver import Receiver
from tests.consumers.notify.conftest import deliveries
from tests.serverproc import run_cli as cli
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until

SPLIT = (
    "this target holds 2 Apprise URLs, stored before a target was limited to one "
    "(each attempt notifies only the URL the SSRF guard checked); split it: keep one "
    "with `eventlog notifications update <id> --target URL`, add a target for each "
    "other with `eventlog notifications create apprise URL` (same --stream and "
    "options), then `eventlog notifications enable <id>`"
)


def build(**spec: Any) -> Endpoint:
    spec.setdefault("retry", "short")
    return build_endpoint(msgspec.convert(spec, NotifySpec), now=time.time(), head=0)


def stored_by_an_older_version(ep: Endpoint, url: str) -> Endpoint:
    """``ep`` with ``url`` in its options, written past today's checks as an older
    version's create did."""
    return msgspec.structs.replace(ep, options={**ep.options, "url": url})


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    one, two = await Receiver().start(), await Receiver().start()
    yield one, two
    await one.stop()
    await two.stop()


def _two_urls(receivers: tuple[Receiver, Receiver]) -> tuple[str, str]:
    one, two = receivers
    return f"json://127.0.0.1:{one.port}/one", f"json://127.0.0.1:{two.port}/two"


def _engine(log: EventLog, *, check_stored: bool = True) -> DeliveryEngine:
    setup = notify_setup(allow_private=True)  # loopback receivers: the guard is not the point
    kinds = setup.kinds
    if not check_stored:  # a kind that learns of it only when it formats an attempt
        kinds = {name: dataclasses.replace(k, check_stored=None) for name, k in kinds.items()}
    return DeliveryEngine(
        log, ledger_for(log), kinds=kinds, sender=setup.sender, allow_private=True
    )


async def _said(log: EventLog) -> list[dict[str, Any]]:
    return [msgspec.json.decode(e.data) async for e in log.scan("system")]


async def test_a_stored_several_url_apprise_target_is_disabled_at_start_saying_how_to_split_it(
    log: EventLog,
    receivers: tuple[Receiver, Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = _two_urls(receivers)
    ep = build(kind="apprise", url=first, id="old")
    older = ledger_for(log)
    await older.open()
    await older.put_endpoint(stored_by_an_older_version(ep, f"{first}, {second}"))
    await log.append("events", {"n": 0}, type="ping")
    engine = _engine(log)
    with caplog.at_level(logging.WARNING, logger="eventlog.delivery"):
        await engine.start()
    try:
        stored = await engine.store.get_endpoint("old")
        assert stored is not None
        assert (stored.enabled, stored.disabled_reason) == (False, SPLIT)
        assert await _said(log) == [
            {"endpoint": "old", "kind": "apprise", "target": "apprise://json", "reason": SPLIT}
        ]
        assert [r.getMessage() for r in caplog.records] == [
            f"endpoint old (apprise://json) disabled: {SPLIT}"
        ]
        assert engine.feeding() == set()
        await asyncio.sleep(scaled(0.3))
        assert await deliveries(engine, "old") == []  # not fed, not attempted
        # Enabling it as it is stays refused (the create-time check).
        with pytest.raises(ValueError, match="one Apprise URL per target"):
            await engine.put_endpoint(msgspec.structs.replace(stored, enabled=True))
        # Split as the reason says: the event waiting since the upgrade reaches both.
        await engine.put_endpoint(build(kind="apprise", url=first, id="old"))
        await engine.put_endpoint(build(kind="apprise", url=second, id="new"))
        for receiver in receivers:
            await receiver.wait_for(1, scaled(20))
    finally:
        await engine.close()
    assert [len(r.requests) for r in receivers] == [1, 1]


async def test_another_processes_several_url_target_is_disabled_on_reload(
    log: EventLog, receivers: tuple[Receiver, Receiver]
) -> None:
    first, second = _two_urls(receivers)
    engine = _engine(log)
    await engine.start()
    try:
        ep = build(kind="apprise", url=first, id="t")
        await engine.put_endpoint(ep)
        await engine.store.put_endpoint(stored_by_an_older_version(ep, f"{first} {second}"))
        await engine.reload("t")  # as the cluster watch does for another process's change
        stored = await engine.store.get_endpoint("t")
        assert stored is not None
        assert (stored.enabled, stored.disabled_reason) == (False, SPLIT)
        assert engine.feeding() == set()
        await log.append("events", {}, type="ping")
        await asyncio.sleep(scaled(0.3))
        assert await deliveries(engine, "t") == []
    finally:
        await engine.close()
    assert [r.requests for r in receivers] == [[], []]


async def test_an_attempt_on_a_refused_target_records_the_reason_and_disables_it(
    log: EventLog,
    receivers: tuple[Receiver, Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = _two_urls(receivers)
    engine = _engine(log, check_stored=False)
    ep = build(kind="apprise", url=first, id="t", max_attempts=5)
    await engine.start()
    try:
        await engine.store.put_endpoint(stored_by_an_older_version(ep, f"{first},{second}"))
        await engine.reload("t")
        await log.append("events", {}, type="ping")

        async def finished() -> bool:
            rows = await deliveries(engine, "t")
            return bool(rows) and rows[0].status == "failed"

        await wait_until(finished, what="the attempt")
        (row,) = await deliveries(engine, "t")
        found = await engine.store.delivery("t", row.id)
        assert found is not None
        (attempt,) = found[1]
        assert (attempt.status, attempt.error, attempt.verdict) == (None, SPLIT, "disable")
        stored = await engine.store.get_endpoint("t")
        assert stored is not None
        assert (stored.enabled, stored.disabled_reason) == (False, SPLIT)
    finally:
        await engine.close()
    assert [r.requests for r in receivers] == [[], []]
    # One warning that says why, no "internal error" traceback.
    said = [r for r in caplog.records if r.getMessage().startswith("endpoint t ")]
    assert [(r.levelname, r.getMessage()) for r in said] == [
        ("WARNING", f"endpoint t (apprise://json) disabled: {SPLIT}")
    ]
    assert [r for r in caplog.records if r.exc_info or "internal error" in r.getMessage()] == []


def test_other_stored_settings_refused_name_the_field_and_the_fix() -> None:
    ep = build(kind="discord", url="https://discord.com/api/webhooks/1/tok", id="d")
    bad = msgspec.structs.replace(ep, options={"template": "{unclosed"})
    check = notify_kinds()["discord"].check_stored
    assert check is not None
    check(ep)  # today's settings pass
    with pytest.raises(TargetRefused) as info:
        check(bad)
    message = str(info.value)
    assert message.startswith("this target's stored settings are refused: options.template: ")
    assert message.endswith(
        "; change them with `eventlog notifications update <id>`, "
        "then `eventlog notifications enable <id>`"
    )
    fmt = notify_kinds()["discord"].format
    with pytest.raises(TargetRefused, match=r"stored settings are refused: options\.template"):
        fmt(bad, None, "msg_1", time.time())  # type: ignore[arg-type]


async def test_a_server_upgraded_over_a_several_url_target_shows_why_and_the_cli_splits_it(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    first, second = _two_urls(receivers)
    db = tmp_path / "events.db"
    async with EventLog.open(db) as log:  # what the older version left in the file
        older = ledger_for(log)
        await older.open()
        ep = build(kind="apprise", url=first, id="ops")
        await older.put_endpoint(stored_by_an_older_version(ep, f"{first}, {second}"))
        await log.append("events", {"n": 0}, type="ping")
    config = tmp_path / "eventlog.toml"
    config.write_text("[webhooks]\nallow_private_targets = true\n")
    server = await asyncio.to_thread(ServerThread.start, db=db, config=config)
    try:
        code, out, err = await cli(server, "notifications", "show", "ops", "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert (shown["enabled"], shown["disabled_reason"]) == (False, SPLIT)
        code, out, _ = await cli(server, "notifications", "show", "ops")
        assert code == 0
        assert "disabled_reason" in out
        assert "holds 2 Apprise URLs" in out
        assert f"endpoint ops (apprise://json) disabled: {SPLIT}" in server.output()
        # The steps of the reason, as written.
        code, _, err = await cli(server, "notifications", "enable", "ops")
        assert code == 1
        assert "one Apprise URL per target" in err
        code, _, err = await cli(server, "notifications", "update", "ops", "--target", first)
        assert code == 0, err
        code, _, err = await cli(
            server, "notifications", "create", "apprise", second, "--id", "ops-2"
        )
        assert code == 0, err
        code, out, err = await cli(server, "notifications", "enable", "ops")
        assert (code, out.strip()) == (0, "ops: enabled"), err
        one, two = receivers
        await one.wait_for(1, scaled(20))  # the event appended before the upgrade
        code, _, err = await cli(server, "append", "events", "--type", "ping", "{}")
        assert code == 0, err
        await one.wait_for(2, scaled(20))
        await two.wait_for(1, scaled(20))
    finally:
        await asyncio.to_thread(server.close)
    for text in (out, err, server.output()):
        assert str(receivers[1].port) not in text  # the Apprise URL is never shown
