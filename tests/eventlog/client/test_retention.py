"""``set_retention`` over the client: the embedded log's name, types, errors and effect."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog, InvalidInput, Retention
from eventlog.client import AsyncClient, Client
from eventlog.errors import Forbidden, InvalidField
from server.auth import hash_key
from tests.serverthread import ServerThread

POLICY = Retention(max_age=7 * 86400, max_count=1000, max_bytes=10 << 20, max_hold=3600.0)


async def test_set_retention_is_what_stream_info_shows_embedded_and_remote(
    log: EventLog | AsyncClient,
) -> None:
    await log.append("orders", {"n": 1}, type="t")
    await log.set_retention("orders", POLICY)
    assert (await log.stream_info("orders")).retention == POLICY
    await log.set_retention("orders", Retention())  # no limits
    assert (await log.stream_info("orders")).retention.unlimited


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        (Retention(max_count=0), "$.max_count"),
        (Retention(max_age=-1.0), "$.max_age"),
        (Retention(max_age=math.nan), "$.max_age"),
        (Retention(max_hold=math.inf), "$.max_hold"),
        (Retention(max_bytes=2**63), "$.max_bytes"),
    ],
)
async def test_bad_limits_raise_invalid_field_embedded_and_remote(
    log: EventLog | AsyncClient, policy: Retention, path: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        await log.set_retention("orders", policy)
    assert (caught.value.code, caught.value.json_path) == ("validation_error", path)
    assert isinstance(caught.value, InvalidInput)


async def test_a_limit_the_server_refuses_arrives_as_invalid_field(server: ServerThread) -> None:
    async with AsyncClient(server.url) as client:
        # Past the client's own check: the server's answer is translated back.
        with pytest.raises(InvalidField) as caught:
            await client.call("PUT", "/api/streams/orders/retention", {"max_count": 0})
    assert (caught.value.http_status, caught.value.json_path) == (422, "$.max_count")


async def test_setting_retention_needs_the_admin_scope(tmp_path: Path) -> None:
    keys = [
        {"name": "admin", "hash": hash_key("admin-key"), "scopes": ["admin"]},
        {"name": "writer", "hash": hash_key("writer"), "scopes": ["read:*", "append:*"]},
    ]
    env = {"EVENTLOG_API_KEYS": msgspec.json.encode(keys).decode()}
    with ServerThread.start(db=tmp_path / "k.db", env=env) as server:
        async with AsyncClient(server.url, api_key="writer") as writer:
            await writer.append("s", 1, type="t")
            with pytest.raises(Forbidden):
                await writer.set_retention("s", Retention(max_count=1))
            assert (await writer.stream_info("s")).retention == Retention()
        async with AsyncClient(server.url, api_key="admin-key") as admin:
            await admin.set_retention("s", Retention(max_count=1))
            assert (await admin.stream_info("s")).retention.max_count == 1


def test_the_sync_client_sets_retention(server: ServerThread) -> None:
    with Client.open(server.url) as log:
        log.append("s", 1, type="t")
        log.set_retention("s", Retention(max_count=5, protect=False))
        assert log.stream_info("s").retention == Retention(max_count=5, protect=False)
        with pytest.raises(InvalidField):
            log.set_retention("s", Retention(max_count=-5))
