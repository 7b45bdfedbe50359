"""The tenant scope without a server: stored names, visibility, shown names."""

from __future__ import annotations

import msgspec
import pytest

from consumers.delivery.model import Endpoint
from consumers.notify.spec import notify_kinds
from consumers.webhook import format_webhook, shown_to
from eventlog.errors import InvalidStreamName
from eventlog.model import validate_stream_name
from server.config import ConfigError, load_config
from server.tenancy import ALL, TenantScope, namespace_of
from tests.support import stored_event


def test_namespace_of_splits_the_tenant_off_stored_and_derived_names() -> None:
    assert namespace_of("acme~orders") == ("acme", "orders")
    assert namespace_of("webhook.acme~hook") == ("acme", "webhook.hook")
    assert namespace_of("acme~c1.parked") == ("acme", "c1.parked")
    assert namespace_of("delivery-feed:webhook.a-b~x") == ("a-b", "delivery-feed:webhook.x")
    assert namespace_of("orders") == (None, "orders")


def test_the_log_accepts_namespaced_names_and_still_refuses_bad_ones() -> None:
    assert validate_stream_name("acme~orders") == "acme~orders"
    assert validate_stream_name("webhook.acme~hook") == "webhook.acme~hook"
    for bad in ("~orders", "acme~", "a~b~c", "acme~.x", "x" * 129, "a" * 100 + "~" + "b" * 100):
        with pytest.raises(InvalidStreamName):
            validate_stream_name(bad)


def test_tenant_scope_stores_in_its_namespace_and_sees_only_it() -> None:
    acme = TenantScope("acme")
    assert acme.name("orders") == "acme~orders"
    with pytest.raises(InvalidStreamName):
        acme.name("globex~orders")
    assert acme.visible("acme~orders")
    assert acme.visible("webhook.acme~hook")
    assert not acme.visible("globex~orders")
    assert not acme.visible("orders")
    assert acme.shown("acme~orders") == "orders"


def test_key_without_tenant_sees_only_names_without_a_namespace() -> None:
    plain = TenantScope(None)
    assert plain.name("orders") == "orders"
    with pytest.raises(InvalidStreamName):
        plain.name("acme~orders")
    assert plain.visible("orders")
    assert not plain.visible("acme~orders")


def test_admin_scope_names_and_sees_stored_names() -> None:
    assert ALL.name("acme~orders") == "acme~orders"
    assert ALL.visible("acme~orders")
    assert ALL.visible("orders")
    assert ALL.shown("acme~orders") == "acme~orders"


#: An event of tenant ``acme``'s stream ``orders``, as stored.
ACME_EVENT = stored_event(stream="acme~orders", id="1")


def test_events_and_frames_show_the_tenants_stream_name() -> None:
    event = ACME_EVENT
    acme = TenantScope("acme")
    assert acme.event(event).stream == "orders"
    text = msgspec.json.encode(event).decode()
    assert msgspec.json.decode(acme.frame(text))["stream"] == "orders"
    assert ALL.frame(text) == text


def test_config_refuses_bad_tenant_names_with_a_clear_error() -> None:
    key = {"name": "k", "hash": "sha256:" + "0" * 64, "scopes": ["admin"], "tenant": "Acme.Corp"}
    with pytest.raises(ConfigError, match="tenant"):
        load_config(flags={"api_keys": [key]})
    with pytest.raises(ConfigError, match="tenant name"):
        load_config(flags={"tenants": {"a~b": {"append_rate": 1}}})
    with pytest.raises(ConfigError, match="append_rate"):
        load_config(flags={"tenants": {"acme": {"append_rate": 0}}})
    config = load_config(flags={"tenants": {"acme": {"max_connections": 3}}})
    assert config.tenants["acme"].max_connections == 3


def test_a_tenants_endpoint_sees_its_events_by_the_tenants_names() -> None:
    event = ACME_EVENT
    mine = Endpoint(id="acme~crm", url="https://example.com/hook", stream="acme~orders")
    assert shown_to(mine, event).stream == "orders"
    body = msgspec.json.decode(format_webhook(mine, event, "msg_1", 0.0).body)
    assert body["stream"] == "orders"
    admins = Endpoint(id="crm", url="https://example.com/hook", stream="acme~orders")
    assert shown_to(admins, event).stream == "acme~orders"  # an admin's endpoint: as stored
    chat = Endpoint(id="acme~chat", url="https://example.com/x", stream="acme~orders")
    discord = notify_kinds()["discord"]
    message = msgspec.json.decode(
        discord.format(
            msgspec.structs.replace(chat, kind="discord", options={"template": "{stream}"}),
            event,
            "msg_1",
            0.0,
        ).body
    )
    assert message["content"] == "orders"


def test_a_tenants_endpoint_sees_a_parked_copys_origin_by_the_tenants_names() -> None:
    headers = {"parked-stream": "acme~orders", "parked-consumer": "acme~c1", "x": "acme~y"}
    parked = msgspec.structs.replace(ACME_EVENT, stream="acme~c1.parked", headers=headers)
    mine = Endpoint(id="acme~crm", url="https://example.com/hook", stream="acme~c1.parked")
    shown = shown_to(mine, parked).headers
    assert shown == {"parked-stream": "orders", "parked-consumer": "c1", "x": "acme~y"}
    admins = Endpoint(id="crm", url="https://example.com/hook", stream="acme~c1.parked")
    assert shown_to(admins, parked).headers == headers
