"""``PATCH /api/webhooks/{id}`` with a field it cannot change says how it changes instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.consumers.delivery.receiver import Receiver
from tests.server.api.test_webhooks import SECRET, config_file
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    with ServerThread.start(db=tmp_path / "events.db", config=config_file(tmp_path)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as client:
            yield client


async def test_patching_the_secret_is_a_422_that_names_rotate_secret_and_changes_nothing(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    r = await api.post("/api/webhooks", json={"id": "orders", "url": receiver.url()})
    assert r.status_code == 201, r.text
    before = r.json()["secrets"]
    r = await api.patch("/api/webhooks/orders", json={"secret": SECRET, "timeout": 2})
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": {
            "code": "validation_error",
            "message": "Object contains unknown field `secret`: the secret is changed with "
            "POST /api/webhooks/{id}/rotate-secret (CLI: eventlog webhooks rotate-secret ID), "
            "which lets the old secret sign for a grace period - at `$.secret`",
            "path": "$.secret",
        }
    }
    shown = (await api.get("/api/webhooks/orders")).json()
    assert (shown["secrets"], shown["timeout"]) == (before, 10.0)  # nothing of it applied
    # The way it names works.
    r = await api.post("/api/webhooks/orders/rotate-secret", json={"secret": SECRET})
    assert r.status_code == 200, r.text
    assert r.json()["secrets"][0]["hint"] == SECRET[:10] + "…"


async def test_patching_the_id_or_start_says_why_and_other_unknown_fields_stay_plain(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    r = await api.post("/api/webhooks", json={"id": "orders", "url": receiver.url()})
    assert r.status_code == 201, r.text
    for field, why in [
        ("id", "an endpoint's id cannot change"),
        ("start", "start applies only when an endpoint is created"),
    ]:
        r = await api.patch("/api/webhooks/orders", json={field: "beginning"})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert why in error["message"]
        assert error["path"] == f"$.{field}"
    r = await api.patch("/api/webhooks/orders", json={"secrets": []})
    assert (r.status_code, r.json()["error"]) == (
        422,
        {
            "code": "validation_error",
            "message": "Object contains unknown field `secrets` - at `$`",
            "path": "$",
        },
    )
