"""The client's sans-I/O half: error answers to the embedded log's classes, request bodies."""

from __future__ import annotations

import msgspec
import pytest

from eventlog import errors as e
from eventlog.client.wire import ERROR_CLASSES, append_body, error_from
from server.errors import ERRORS
from tests.support import assert_imports_none_of


def answer(code: str, message: str = "m", **extra: object) -> bytes:
    return msgspec.json.encode({"error": {"code": code, "message": message, **extra}})


@pytest.mark.parametrize("code", sorted(ERROR_CLASSES))
def test_every_code_of_the_tree_comes_back_as_its_own_class(code: str) -> None:
    status = ERRORS[code][0] if code in ERRORS else 422
    exc = error_from(status, answer(code, "the server's words"))
    assert type(exc) is ERROR_CLASSES[code]
    assert (exc.code, str(exc), exc.http_status) == (code, "the server's words", status)


@pytest.mark.parametrize(
    ("status", "code", "branch"),
    [
        (409, "claim_expired", e.Conflict),
        (404, "claim_not_found", e.NotFound),
        (422, "invalid_delay", e.InvalidInput),
        (429, "rate_limited", e.Unavailable),
        (500, "internal_error", e.EventLogError),
    ],
)
def test_a_code_the_table_does_not_know_is_its_statuss_branch_keeping_the_code(
    status: int, code: str, branch: type[e.EventLogError]
) -> None:
    exc = error_from(status, answer(code))
    assert type(exc) is branch
    assert exc.code == code


def test_offset_out_of_range_carries_the_first_retained_offset_and_the_request() -> None:
    body = answer("offset_out_of_range", "gone", first_offset=40, skipped=37)
    exc = error_from(416, body, context={"stream": "s", "offset": 3})
    assert isinstance(exc, e.OffsetOutOfRange)
    assert (exc.stream, exc.offset, exc.first, exc.skipped) == ("s", 3, 40, 37)


def test_a_validation_error_keeps_its_json_path() -> None:
    exc = error_from(422, answer("invalid_event", "bad", path="$[1].type"))
    assert isinstance(exc, e.InvalidEvent)
    assert (exc.json_path, exc.path) == ("$[1].type", "$[1].type")


@pytest.mark.parametrize(
    ("status", "body", "reason", "branch", "message"),
    [
        (503, b"<html>\n busy </html>", "", e.Unavailable, "server answered HTTP 503: <html> busy"),
        (502, b"", "Bad Gateway", e.Unavailable, "server answered HTTP 502: Bad Gateway"),
        (500, b'{"unexpected": 1}', "", e.EventLogError, "server answered HTTP 500"),
    ],
)
def test_an_answer_that_is_not_eventlogs_json_error_is_quoted(
    status: int, body: bytes, reason: str, branch: type[e.EventLogError], message: str
) -> None:
    exc = error_from(status, body, reason)
    assert type(exc) is branch
    assert str(exc).startswith(message)
    assert exc.code == f"http_{status}"


def test_append_body_sends_one_appended_event_as_an_object_and_a_batch_as_an_array() -> None:
    body, ids = append_body([{"type": "a"}], one=True)
    assert msgspec.json.decode(body) == {"type": "a", "id": ids[0]}
    body, ids = append_body([{"type": "a"}])  # a batch of one: its errors name $[0]
    assert msgspec.json.decode(body) == [{"type": "a", "id": ids[0]}]


def test_append_body_gives_every_event_an_id_and_keeps_raw_data() -> None:
    body, ids = append_body(
        [{"type": "a", "data": msgspec.Raw(b"[1, 2]")}, {"type": "b", "id": "mine"}]
    )
    decoded = msgspec.json.decode(body)
    assert ids[1] == "mine"
    assert len(ids[0]) == 36
    assert decoded == [{"type": "a", "data": [1, 2], "id": ids[0]}, {"type": "b", "id": "mine"}]
    assert b"[1, 2]" in body  # the caller's bytes, not re-encoded


@pytest.mark.parametrize(
    "events", [[], [{"data": 1}], [{"type": "t", "typo": 1}], [{"type": "t", "data": object()}]]
)
def test_append_body_refuses_what_is_not_an_event(events: list[dict[str, object]]) -> None:
    with pytest.raises(e.InvalidEvent):
        append_body(events)


def test_the_client_imports_neither_server_nor_consumers() -> None:
    assert_imports_none_of("eventlog.client", ("server", "consumers", "starlette"))


def test_a_url_that_is_not_http_is_refused_at_once() -> None:
    from eventlog.client import AsyncClient

    with pytest.raises(e.InvalidParameter, match="http:// or https://"):
        AsyncClient("localhost:7432")
