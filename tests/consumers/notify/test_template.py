"""Message templates (pure): placeholders, fallbacks, escaping, errors, no evaluation."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from consumers.notify.template import TemplateError, event_context, parse
from eventlog.model import Event

EVENT = Event(
    stream="orders",
    offset=7,
    id="evt-1",
    type="order.created",
    key="tenant-7",
    time=datetime(2026, 11, 22, 16, 0, 0, 250000, tzinfo=UTC),
    headers={"correlation-id": "c-1"},
    data=msgspec.Raw(
        b'{"order":{"id":42,"total":19.5,"paid":true,"items":[{"sku":"A"},{"sku":"B"}],'
        b'"note":null,"a.b":"dotted"}}'
    ),
)
CTX = event_context(EVENT)


def render(template: str) -> str:
    return parse(template).render(CTX)


def test_event_fields_and_data_paths() -> None:
    assert render("{type} {stream}#{offset} {id} {key}") == "order.created orders#7 evt-1 tenant-7"
    assert render("{time}") == "2026-11-22T16:00:00.250000Z"
    assert render("{headers.correlation-id}") == "c-1"
    assert render("order {data.order.id} paid={data.order.paid} total={data.order.total}") == (
        "order 42 paid=true total=19.5"
    )
    assert render("{data.order.items.1.sku}") == "B"
    assert render("{data.order.`a.b`}") == "dotted"


def test_objects_and_lists_render_as_compact_json() -> None:
    assert render("{data.order.items}") == '[{"sku":"A"},{"sku":"B"}]'


def test_missing_and_null_use_the_fallback_or_nothing() -> None:
    assert render("[{data.order.coupon}]") == "[]"
    assert render("[{data.order.coupon|none}]") == "[none]"
    assert render("[{data.order.note|no note}]") == "[no note]"
    assert render("[{data.order.items.9.sku|?}]") == "[?]"
    assert render("[{data.order.id.deeper|x}]") == "[x]"


def test_literal_braces() -> None:
    assert render("{{not a placeholder}} {offset}") == "{not a placeholder} 7"


def test_nothing_is_evaluated() -> None:
    for sneaky in ("{__class__}", "{data.__class__.__mro__}", "{type.upper}", "{offset.real}"):
        assert render(sneaky) == ""


def test_escape_applies_to_values_only() -> None:
    ctx = {**CTX, "data": {"text": "<!channel> & co"}}
    out = parse("<https://x.example/{offset}|link>: {data.text}").render(ctx, lambda s: s.upper())
    assert out == "<https://x.example/7|link>: <!CHANNEL> & CO"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{type", "not closed"),
        ("type}", "single '}'"),
        ("{}", "empty placeholder"),
        ("{data..x}", "empty path segment"),
        ("{a{b}}", "inside the placeholder"),
        ("{data.`x}", "not closed"),
        ("x" * 9000, "at most"),
    ],
)
def test_malformed_templates_are_refused_with_the_position(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        parse(template)


def test_undecodable_data_renders_as_absent() -> None:
    event = msgspec.structs.replace(EVENT, data=msgspec.Raw(b"{not json"))
    assert parse("[{data.x|-}]").render(event_context(event)) == "[-]"


def test_data_that_is_not_utf8_renders_repaired_and_the_header_says_so() -> None:
    event = msgspec.structs.replace(EVENT, data=msgspec.Raw(b'{"x": "caf\xe9"}'))
    ctx = event_context(event)
    assert parse("{data.x}").render(ctx) == "caf\ufffd"
    assert ctx["headers"]["eventlog-repaired"] == "utf-8"
