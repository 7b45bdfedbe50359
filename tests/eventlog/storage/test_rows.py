"""Event rows as Events: times decoded per group commit, key and headers only when stored."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime

import msgspec
import pytest

from eventlog.storage.rows import events_from_rows, to_us

T1 = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)
T2 = datetime(2026, 12, 6, 12, 0, 1, tzinfo=UTC)


def test_a_page_of_one_commit_shares_its_time() -> None:
    rows = [(i, f"id{i}", "t", None, to_us(T1), None, b"%d" % i) for i in range(3)]
    events = events_from_rows("s", rows)
    assert [(e.offset, e.id, e.time, bytes(e.data)) for e in events] == [
        (0, "id0", T1, b"0"),
        (1, "id1", T1, b"1"),
        (2, "id2", T1, b"2"),
    ]
    assert [(e.key, e.headers) for e in events] == [(None, {})] * 3


def test_events_without_headers_share_one_empty_dict_that_refuses_changes() -> None:
    rows = [(i, f"id{i}", "t", "k" if i else None, to_us(T1), None, b"1") for i in range(2)]
    plain, keyed = events_from_rows("s", rows)
    assert plain.headers is keyed.headers
    assert isinstance(plain.headers, dict)
    assert msgspec.json.encode(plain.headers) == b"{}"
    with pytest.raises(TypeError, match="cannot be changed"):
        plain.headers["tenant"] = "acme"
    with pytest.raises(TypeError, match="cannot be changed"):
        plain.headers.update(tenant="acme")
    assert plain.headers == {}
    assert dict(plain.headers) | {"a": "b"} == {"a": "b"}
    for copied in (copy.copy(plain.headers), pickle.loads(pickle.dumps(plain.headers))):
        assert type(copied) is dict
        assert copied == {}
    assert pickle.loads(pickle.dumps(plain)) == plain


def test_a_page_across_commits_gives_each_event_its_commits_time() -> None:
    rows = [
        (0, "a", "t", None, to_us(T1), None, b"1"),
        (1, "b", "t", "k", to_us(T1), b'{"h":"v"}', b"2"),
        (2, "c", "u", None, to_us(T2), None, b"3"),
        (3, "d", "u", "k2", to_us(T2), None, b"4"),
    ]
    events = events_from_rows("s", rows)
    assert [(e.time, e.type, e.key, e.headers) for e in events] == [
        (T1, "t", None, {}),
        (T1, "t", "k", {"h": "v"}),
        (T2, "u", None, {}),
        (T2, "u", "k2", {}),
    ]
    assert events_from_rows("s", []) == []


def test_extras_on_a_page_of_one_time_are_kept() -> None:
    rows = [
        (5, "a", "t", "k", to_us(T2), b'{"x":"1"}', b"{}"),
        (6, "b", "t", None, to_us(T2), None, b"[]"),
    ]
    first, second = events_from_rows("s", rows)
    assert (first.key, first.headers, first.time) == ("k", {"x": "1"}, T2)
    assert (second.key, second.headers, second.time) == (None, {}, T2)
