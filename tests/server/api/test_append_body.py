"""Append request bodies: media types, raw data bytes, batch limits, idempotency keys."""

from __future__ import annotations

import pytest

from eventlog import EventLogError
from eventlog.encoding import CheckedJSON
from server.api.append_body import apply_idempotency_key, media_type, parse_body
from server.errors import status_for


def test_media_type_ignores_parameters_and_case() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""


def test_parse_body_keeps_data_bytes_verbatim() -> None:
    parsed = parse_body(b'{"type":"t","data": [1, 2.50 ]}', "application/json", max_events=10)
    assert parsed.single
    data = parsed.events[0].data
    assert isinstance(data, CheckedJSON)  # decoded and checked: the log stores it as it is
    assert data.value == b"[1, 2.50 ]"


def test_parse_body_batch_limit_and_ndjson_paths() -> None:
    with pytest.raises(EventLogError) as info:
        parse_body(b'[{"type":"a"},{"type":"b"}]', "application/json", max_events=1)
    assert (status_for(info.value), info.value.code) == (422, "batch_too_large")
    with pytest.raises(EventLogError) as info:
        parse_body(b'{"type":"a"}\n\n{"type":"b","x":1}\n', "application/x-ndjson", max_events=9)
    assert info.value.json_path == "$[1]"


def test_idempotency_key_single_and_batch() -> None:
    single = parse_body(b'{"type":"a"}', "application/json", max_events=9)
    assert apply_idempotency_key(single, "k1")[0].id == "k1"
    assert apply_idempotency_key(single, None)[0].id is None
    batch = parse_body(b'[{"type":"a","id":"own"},{"type":"b"}]', "application/json", max_events=9)
    assert [e.id for e in apply_idempotency_key(batch, "k2")] == ["own", "k2.1"]
    with pytest.raises(EventLogError):
        apply_idempotency_key(single, "x" * 201)
