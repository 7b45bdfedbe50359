"""The tenant scope without a server: stored names, visibility, shown names."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from eventlog.errors import InvalidStreamName
from eventlog.model import Event, validate_stream_name
from server.tenancy import ALL, TenantScope, namespace_of


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


def test_events_and_frames_show_the_tenants_stream_name() -> None:
    event = Event(
        stream="acme~orders",
        offset=0,
        id="1",
        type="t",
        key=None,
        time=datetime.now(UTC),
        headers={},
        data=msgspec.Raw(b"{}"),
    )
    acme = TenantScope("acme")
    assert acme.event(event).stream == "orders"
    text = msgspec.json.encode(event).decode()
    assert msgspec.json.decode(acme.frame(text))["stream"] == "orders"
    assert ALL.frame(text) == text
