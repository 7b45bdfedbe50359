"""The sans-I/O rules of the client CLI: input modes, --from, batching, line splitting."""

from __future__ import annotations

import msgspec
import pytest

from eventlog import Retention
from server.cli.client import retry_delay
from server.cli.events import (
    Batcher,
    InputError,
    LineSplitter,
    OutEvent,
    check_stream,
    encode_event,
    encode_out,
    line_of,
    parse_argument,
    parse_from,
    parse_line,
)
from server.cli.tables import format_retention
from tests.support import stored_event


def test_event_mode_line_keeps_every_field_and_data_bytes() -> None:
    raw = b'{"type":"t","data":{"b": 2,  "a":[1, 2]},"key":"k","id":"x","headers":{"h":"v"}}'
    event = parse_line(raw, lineno=1)
    assert event is not None
    assert (event.type, event.key, event.id, event.headers) == ("t", "k", "x", {"h": "v"})
    assert bytes(event.data) == b'{"b": 2,  "a":[1, 2]}'


def test_event_mode_line_accepts_an_exported_event_and_drops_stream_offset_time() -> None:
    event = stored_event(b"[1]", offset=4, id="i")
    parsed = parse_line(encode_event(event), lineno=1)
    assert parsed == OutEvent(type="t", data=msgspec.Raw(b"[1]"), id="i")
    assert msgspec.json.decode(encode_out([parsed])) == [{"type": "t", "data": [1], "id": "i"}]


def test_event_mode_default_key_fills_only_missing_keys() -> None:
    own = parse_line(b'{"type":"t","key":"own"}', lineno=1, key="default")
    missing = parse_line(b'{"type":"t"}', lineno=1, key="default")
    assert own is not None
    assert missing is not None
    assert (own.key, missing.key) == ("own", "default")
    assert bytes(missing.data) == b"null"


def test_payload_mode_line_is_the_data() -> None:
    event = parse_line(b' {"type": "not the event type"} \n', lineno=3, type="t", key="k")
    assert event == OutEvent(type="t", key="k", data=msgspec.Raw(b'{"type": "not the event type"}'))


@pytest.mark.parametrize("raw", [b"", b"   ", b"\t\r"])
def test_blank_lines_are_skipped(raw: bytes) -> None:
    assert parse_line(raw, lineno=1) is None
    assert parse_line(raw, lineno=1, type="t") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"type": "t"', "stdin line 7: not valid JSON"),
        (b'{"data": 1}', "stdin line 7: not an event object: Object missing required field `type`"),
        (b'{"type": "t", "dat": 1}', "unknown field `dat`"),
        (b'{"type": 5}', "Expected `str`, got `int`"),
        (b"[1, 2]", "not an event object"),
        (b'{"type": "t", "data": "\xff"}', "stdin line 7: not valid UTF-8 .byte 23."),
    ],
)
def test_bad_event_mode_lines_name_the_line_and_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        parse_line(raw, lineno=7)


def test_bad_payload_mode_line_is_reported() -> None:
    with pytest.raises(InputError, match="stdin line 2: not valid JSON"):
        parse_line(b"{nope}", lineno=2, type="t")


def test_argument_event_object_array_and_payload() -> None:
    [one] = parse_argument('{"type":"t","data":1}', id="i", key="k")
    assert (one.type, one.id, one.key, bytes(one.data)) == ("t", "i", "k", b"1")
    many = parse_argument('[{"type":"a"},{"type":"b","data":[]}]')
    assert [e.type for e in many] == ["a", "b"]
    [payload] = parse_argument("[1, 2]", type="t", id="i")
    assert (payload.type, payload.id, bytes(payload.data)) == ("t", "i", b"[1, 2]")


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("{", {}, "JSON argument: not valid JSON"),
        ('{"data": 1}', {}, "give --type"),
        ("[]", {}, "empty array"),
        ('[{"type":"a"},{"type":"b"}]', {"id": "x"}, "--id needs exactly one event"),
        ("nope", {"type": "t"}, "JSON argument: not valid JSON"),
    ],
)
def test_bad_arguments_are_usage_errors(text: str, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_argument(text, **kwargs)


def test_stream_names_are_checked_like_the_log_does() -> None:
    assert check_stream("orders.v1-eu_2") == "orders.v1-eu_2"
    for bad in ("", "-x", "a b", "é", "x" * 129, "a/b"):
        with pytest.raises(InputError, match="invalid name"):
            check_stream(bad)


@pytest.mark.parametrize(
    ("text", "first", "head", "expected"),
    [
        ("beginning", 5, 20, 5),
        ("END", 5, 20, 20),
        ("7", 5, 20, 7),
        ("-3", 5, 20, 17),
        ("-100", 5, 20, 5),
        ("-10", 0, 0, 0),
        ("0", 0, 0, 0),
    ],
)
def test_from_positions_resolve_against_the_retained_range(
    text: str, first: int, head: int, expected: int
) -> None:
    assert parse_from(text).resolve(first, head) == expected


@pytest.mark.parametrize("text", ["", "start", "1.5", "0x10", "latest"])
def test_bad_from_is_a_usage_error(text: str) -> None:
    with pytest.raises(InputError, match="--from must be"):
        parse_from(text)


def test_batcher_bounds_count_and_bytes_and_keeps_order() -> None:
    events = [(i + 1, OutEvent(type="t", data=msgspec.Raw(b"1" * 100))) for i in range(10)]
    by_count = list(Batcher(3, 1 << 20).batches(events))
    assert [len(b) for b in by_count] == [3, 3, 3, 1]
    by_bytes = list(Batcher(100, 2 * 165 + 1).batches(events))
    assert [len(b) for b in by_bytes] == [2, 2, 2, 2, 2]
    assert [e for b in by_bytes for e in b] == events
    huge = [(1, OutEvent(type="t", data=msgspec.Raw(b"1" * 1000)))]
    assert list(Batcher(10, 10).batches(huge)) == [huge]
    with pytest.raises(ValueError, match="positive"):
        Batcher(0, 1)


def test_server_error_path_maps_back_to_the_input_line() -> None:
    lines = [3, 5, 9]
    assert line_of("$[1].type", lines) == 5
    assert line_of("$[2]", lines) == 9
    assert line_of("$[3].type", lines) is None
    assert line_of("$.type", lines) is None
    assert line_of("$.type", [12]) == 12
    assert line_of("$", [12]) == 12
    assert line_of("type", [12]) is None
    assert line_of(None, lines) is None
    assert line_of("$[0].data", [0]) is None  # the JSON argument has no line


def test_line_splitter_numbers_lines_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a"') == []
    assert splitter.feed(b":1}\n\n[2]\n[") == [(1, b'{"a":1}'), (2, b""), (3, b"[2]")]
    assert splitter.feed(b"3]") == []
    assert splitter.finish() == [(4, b"[3]")]
    assert splitter.finish() == []


def test_retention_is_summarised() -> None:
    assert format_retention(Retention()) == "-"
    assert (
        format_retention(Retention(max_age=7 * 86400, max_count=1000, max_bytes=2_000_000))
        == "age 7d, count 1000, bytes 2.0 MB"
    )
    assert format_retention(Retention(max_age=90)) == "age 90s"


def test_follow_retry_delay_doubles_up_to_five_seconds() -> None:
    assert [retry_delay(n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert retry_delay(10_000) == 5.0


def test_line_splitter_joins_a_long_line_from_many_chunks() -> None:
    splitter = LineSplitter()
    pieces = [b"x" * 1000] * 50
    for piece in pieces:
        assert splitter.feed(piece) == []
    assert splitter.feed(b"y\nz") == [(1, b"x" * 50_000 + b"y")]
    assert splitter.feed(b"") == []
    assert splitter.feed(b"\n\n") == [(2, b"z"), (3, b"")]
    assert splitter.finish() == []


def test_an_event_stored_not_utf8_is_exported_repaired_so_that_it_imports() -> None:
    event = stored_event(b'{"note": "caf\xe9"}', offset=2, id="old-2")
    line = encode_event(event)
    line.decode("utf-8")  # the line is UTF-8
    parsed = parse_line(line, lineno=1)
    assert parsed is not None
    assert msgspec.json.decode(parsed.data) == {"note": "caf\ufffd"}
    assert parsed.headers == {"eventlog-repaired": "utf-8"}
