"""``/api/ingest/sources`` against a real server: CRUD, redaction, auth, persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth import hash_key
from tests.server.ingest.senders import SW_SECRET, github_headers, standard_headers
from tests.serverthread import ServerThread
from tests.support import scaled

ADMIN = "admin-key-for-tests"
APPENDER = "append-only-key"

CONFIG = f"""
[[api_keys]]
name = "admin"
hash = "{hash_key(ADMIN)}"
scopes = ["admin"]

[[api_keys]]
name = "producer"
hash = "{hash_key(APPENDER)}"
scopes = ["append:*", "read:*"]

[[ingest.sources]]
name = "github"
stream = "github"
verify = {{ scheme = "github", secret = "from-the-config-file" }}
"""

SHOP: dict[str, Any] = {
    "name": "shop",
    "stream": "orders",
    "verify": {"scheme": "standard", "secret": SW_SECRET},
    "key": "$.data.order.id",
    "fields": {"total": "$.data.order.total"},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    config = tmp_path / "eventlog.toml"
    config.write_text(CONFIG)
    with ServerThread.start(db=tmp_path / "events.db", config=config) as s:
        yield s


@pytest.fixture
def admin(server: ServerThread) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=scaled(10)) as c:
        yield c


def order_body(total: int = 10) -> bytes:
    return b'{"type":"order.created","data":{"order":{"id":"o-1","total":%d}}}' % total


def test_source_created_through_the_api_receives_webhooks_and_survives_a_restart(
    server: ServerThread, admin: httpx.Client
) -> None:
    created = admin.post("/api/ingest/sources", json=SHOP)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["verify"] == {"scheme": "standard", "secret": "<redacted>", "tolerance": 300.0}
    # The scheme's defaults are shown, not null.
    assert view["type"] == {"header": None, "path": "$.type", "prefix": "", "default": None}
    assert view["id"] == {"header": "webhook-id", "path": None, "required": True}
    assert view["origin"] == "api"
    assert view["url"] == "/ingest/shop"

    body = order_body()
    sent = admin.post("/ingest/shop", content=body, headers=standard_headers(body, msg_id="m-1"))
    assert sent.status_code == 202, sent.text

    server.restart()
    listed = admin.get("/api/ingest/sources").json()["sources"]
    assert [(s["name"], s["origin"]) for s in listed] == [("github", "config"), ("shop", "api")]
    again = admin.post("/ingest/shop", content=body, headers=standard_headers(body, msg_id="m-1"))
    assert again.json()["duplicate"] is True
    assert SW_SECRET not in admin.get("/api/ingest/sources/shop").text


def test_put_replaces_and_delete_removes(admin: httpx.Client) -> None:
    assert admin.put("/api/ingest/sources/shop", json=SHOP).status_code == 201
    changed = {**SHOP, "fields": {"total": {"path": "$.data.order.total", "required": False}}}
    del changed["name"]  # the URL names it
    replaced = admin.put("/api/ingest/sources/shop", json=changed)
    assert replaced.status_code == 200
    assert replaced.json()["fields"]["total"]["required"] is False
    body = b'{"type":"order.created","data":{"order":{"id":"o-2"}}}'
    assert (
        admin.post("/ingest/shop", content=body, headers=standard_headers(body)).status_code == 202
    )

    assert admin.delete("/api/ingest/sources/shop").status_code == 204
    gone = admin.post("/ingest/shop", content=body, headers=standard_headers(body, msg_id="m-9"))
    assert gone.status_code == 404
    assert admin.delete("/api/ingest/sources/shop").status_code == 404
    assert admin.get("/api/ingest/sources/shop").status_code == 404


def test_conflicts_and_bad_definitions_are_4xx_with_the_field_named(admin: httpx.Client) -> None:
    assert admin.post("/api/ingest/sources", json=SHOP).status_code == 201
    assert admin.post("/api/ingest/sources", json=SHOP).json()["error"]["code"] == "source_exists"
    config_owned = admin.put("/api/ingest/sources/github", json={**SHOP, "name": "github"})
    assert config_owned.status_code == 409
    assert config_owned.json()["error"]["code"] == "source_in_config"
    assert admin.delete("/api/ingest/sources/github").status_code == 409

    bad_path = admin.post("/api/ingest/sources", json={**SHOP, "name": "x", "key": "order.id"})
    assert bad_path.status_code == 422
    assert bad_path.json()["error"]["path"] == "$.key"
    bad_secret = admin.post(
        "/api/ingest/sources",
        json={**SHOP, "name": "y", "verify": {"scheme": "standard", "secret": "whsec_!!"}},
    )
    assert bad_secret.status_code == 422
    assert bad_secret.json()["error"]["path"] == "$.verify.secret"
    mismatch = admin.put("/api/ingest/sources/z", json={**SHOP, "name": "other"})
    assert mismatch.status_code == 422
    assert mismatch.json()["error"]["path"] == "$.name"
    for junk in (b"{", b"[]", b'"x"'):
        answer = admin.post("/api/ingest/sources", content=junk)
        assert 400 <= answer.status_code < 500, answer.text


def test_source_management_needs_admin_but_ingest_needs_no_api_key(
    server: ServerThread, admin: httpx.Client
) -> None:
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as anonymous:
        assert anonymous.get("/api/ingest/sources").status_code == 401
        producer = {"Authorization": f"Bearer {APPENDER}"}
        assert anonymous.post("/api/ingest/sources", json=SHOP, headers=producer).status_code == 403
        body = b'{"zen":"Keep it logically awesome."}'
        delivered = anonymous.post(
            "/ingest/github",
            content=body,
            headers=github_headers(body, secret="from-the-config-file", event="ping"),
        )
        assert delivered.status_code == 202, delivered.text
