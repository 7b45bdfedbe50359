"""The one event filter dialect (pure: no event loop, no storage)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import cast

import pytest

from consumers.filter import EventFilter, check_key_pattern, check_type_pattern
from consumers.firehose import parse_key, parse_types
from consumers.runtime import matches
from consumers.webhook import EndpointSpec, SpecError, build_endpoint
from eventlog import Event, InvalidInput


@dataclass(frozen=True)
class Ev:
    type: str
    key: str | None = None


def test_types_match_any_pattern_case_sensitively_and_wholly() -> None:
    f = EventFilter(["order.*", "payment.failed"])
    assert f.matches(Ev("order.created"))
    assert f.matches(Ev("order.line.added"))
    assert f.matches(Ev("order."))
    assert f.matches(Ev("payment.failed"))
    assert not f.matches(Ev("payment.failed.twice"))
    assert not f.matches(Ev("Order.created"))
    assert not f.matches(Ev("orders"))


def test_question_mark_is_exactly_one_character_and_sets_are_sets() -> None:
    f = EventFilter(["v?.created", "[ab].x", "[!ab].y", "lit[*]"])
    assert f.matches(Ev("v1.created"))
    assert not f.matches(Ev("v10.created"))
    assert not f.matches(Ev("v.created"))
    assert f.matches(Ev("a.x"))
    assert not f.matches(Ev("c.x"))
    assert f.matches(Ev("c.y"))
    assert not f.matches(Ev("a.y"))
    assert f.matches(Ev("lit*"))
    assert not f.matches(Ev("litx"))


def test_a_key_without_wildcards_is_exact_and_a_key_pattern_matches_like_types() -> None:
    exact = EventFilter(key="tenant-7")
    assert exact.matches(Ev("t", "tenant-7"))
    assert not exact.matches(Ev("t", "tenant-77"))
    assert not exact.matches(Ev("t", None))
    pattern = EventFilter(["a.*"], key="tenant-7:*")
    assert pattern.matches(Ev("a.b", "tenant-7:call-42"))
    assert not pattern.matches(Ev("a.b", "tenant-8:call-42"))
    assert not pattern.matches(Ev("b.b", "tenant-7:call-42"))
    assert not pattern.matches(Ev("a.b", None))


def test_empty_filter_passes_everything_and_select_keeps_order() -> None:
    events = [Ev("a", "1"), Ev("b"), Ev("a", "2")]
    assert EventFilter().everything
    assert EventFilter().select(events) is events
    assert EventFilter(["a"]).select(events) == [events[0], events[2]]
    assert not EventFilter(["a"]).everything
    assert not EventFilter(key="k").everything


def _old_webhook_filter(pattern: str) -> re.Pattern[str]:
    """What webhooks' ``TypeFilter`` compiled a pattern to before the one dialect."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def test_stored_webhook_filters_match_what_they_matched_before() -> None:
    # Old webhook patterns were 1-256 of [A-Za-z0-9._:*/-]; in the one dialect
    # such a pattern means the same, for types and keys alike.
    patterns = ["order.*", "*", "a*b", "*.paid", "tenant-7:*", "x/y:z", "a.b", "**", "*-*"]
    subjects = ["order.created", "order.", "ab", "axxb", "b", "x.paid", "tenant-7:1", "x/y:z"]
    subjects += ["a.b", "aXb", "-", "a-b", "", "ORDER.created"]
    for pattern, subject in itertools.product(patterns, subjects):
        old = _old_webhook_filter(pattern).fullmatch(subject) is not None
        assert EventFilter([pattern]).matches(Ev(subject)) is old, (pattern, subject)
        assert EventFilter(key=pattern).matches(Ev("t", subject)) is old, (pattern, subject)


@pytest.mark.parametrize("bad", ["", "a b", "tab\there", "nul\x00", "x" * 257])
def test_bad_type_patterns_are_refused_everywhere(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_type_pattern(bad)
    with pytest.raises(InvalidInput):
        EventFilter([bad])
    with pytest.raises(InvalidInput):
        parse_types(f"ok,{bad}")
    with pytest.raises(SpecError) as info:
        build_endpoint(EndpointSpec(url="https://example.com/", types=[bad]), now=0.0, head=0)
    assert info.value.path == "types[0]"


@pytest.mark.parametrize("bad", ["", "bell\x07", "k" * 1025])
def test_bad_key_patterns_are_refused_everywhere(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_key_pattern(bad)
    with pytest.raises(InvalidInput):
        parse_key(bad)
    with pytest.raises(SpecError) as info:
        build_endpoint(EndpointSpec(url="https://example.com/", key=bad), now=0.0, head=0)
    assert info.value.path == "key"


def test_webhooks_accept_the_whole_dialect_and_keys_with_spaces() -> None:
    spec = EndpointSpec(url="https://example.com/", types=["v?.created", "[ab].x"], key="a b*")
    endpoint = build_endpoint(spec, now=0.0, head=0)
    assert endpoint.types == ["v?.created", "[ab].x"]
    assert endpoint.key == "a b*"


def test_handler_consumers_use_the_same_dialect() -> None:
    event = cast(Event, Ev("order.created", "tenant-7:42"))  # matches reads .type and .key
    assert matches(event, ["order.*"], "tenant-7:*")
    assert matches(event, ["order.create?"], None)
    assert not matches(event, ["order.*"], "tenant-8:*")
    with pytest.raises(InvalidInput):
        matches(event, ["order created"], None)
