"""One error tree, one code -> HTTP status / WebSocket close code table (pure)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import consumers
import eventlog
import server
from consumers.delivery.ledger import DeliveryConflict
from consumers.delivery.ssrf import UnsafeTarget
from consumers.firehose import FirehoseFull, Phase, SubscriptionEnded
from consumers.shared.errors import (
    AlreadyAcked,
    ClaimExpired,
    ClaimNotFound,
    ClaimNotHeld,
    ConsumerNotShared,
    InvalidDelay,
)
from consumers.webhook import SpecError
from eventlog import errors as e
from server.errors import (
    CLOSE_GONE,
    CLOSE_SLOW,
    ERRORS,
    response_for,
    status_for,
    ws_close_code_for,
)
from server.ingest.verify import SignatureError

ROOT = Path(__file__).resolve().parents[2]


def _exception_classes() -> list[type[BaseException]]:
    """Every public exception class the three packages define (the CLI's own aside)."""
    found: list[type[BaseException]] = []
    for package in (eventlog, consumers, server):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__") or info.name.startswith("server.cli"):
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    found.append(value)
    return found


def test_every_domain_error_is_in_the_one_tree_with_a_row_in_the_table() -> None:
    classes = _exception_classes()
    assert len(classes) > 30
    outside = [c.__qualname__ for c in classes if not issubclass(c, e.EventLogError)]
    assert outside == []
    unmapped = [
        f"{c.__module__}.{c.__qualname__} ({c.code})"
        for c in classes
        if issubclass(c, e.EventLogError) and c is not e.EventLogError and c.code not in ERRORS
    ]
    assert unmapped == []


def test_routes_raise_errors_and_pick_no_status() -> None:
    """The status of an error lives in one table: no route builds an error response."""
    picks = re.compile(r"error_response\(\s*\d|raise \w+\(\s*\d{3}\b")
    for path in sorted((ROOT / "server").rglob("*.py")):
        text = path.read_text()
        assert "ApiError" not in text, path
        if path.name != "errors.py":
            assert picks.search(text) is None, path


@pytest.mark.parametrize(
    ("error", "status", "close"),
    [
        (e.InvalidStreamName("bad"), 400, 4400),
        (e.EventTooLarge(10, 5), 413, 4413),
        (e.InvalidEvent("x"), 422, 4422),
        (e.InvalidField("x", path="$.position", code="invalid_position"), 422, 4422),
        (e.InvalidPosition("x"), 400, 4400),
        (e.InvalidInput("x", code="body_too_large"), 413, 4413),
        (e.InvalidInput("x", code="unsupported_media_type"), 415, 4415),
        (e.NotFound("x", code="unknown_source"), 404, 4404),
        (e.StreamNotFound("s"), 404, 4404),
        (e.ExpectedOffsetMismatch("s", 1, 2), 409, 4409),
        (DeliveryConflict("in flight"), 409, 4409),
        (SignatureError("bad_signature", "no"), 401, 4401),
        (e.Forbidden("x", code="replay_not_allowed"), 403, 4403),
        (e.OffsetOutOfRange("s", 1, 5), 416, CLOSE_GONE),
        (SpecError("types[0]", "bad"), 422, 4422),
        (UnsafeTarget("loopback"), 422, 4422),
        (FirehoseFull(2), 503, 1013),
        (SubscriptionEnded(Phase.OVERFLOWED, 7, "slow"), 503, CLOSE_SLOW),
        (SubscriptionEnded(Phase.CLOSED, 7, "stream deleted"), 503, 1001),
        (e.LogClosed("closed"), 503, 1001),
        (e.Unavailable("x", code="shutting_down"), 503, 1001),
        (e.CorruptDatabase("x"), 503, 1011),
        (ClaimNotFound("x"), 404, 4404),
        (ClaimExpired("x"), 409, 4409),
        (ClaimNotHeld("x"), 409, 4409),
        (AlreadyAcked("x"), 409, 4409),
        (ConsumerNotShared("x"), 409, 4409),
        (InvalidDelay("x", path="$.delay"), 422, 4422),
    ],
)
def test_one_table_gives_status_and_close_code(
    error: e.EventLogError, status: int, close: int
) -> None:
    assert (status_for(error), ws_close_code_for(error)) == (status, close)


def test_a_new_error_answers_like_its_branch_and_an_unknown_one_is_a_500() -> None:
    class NewConflict(e.Conflict):
        code = "brand_new_conflict"

    assert status_for(NewConflict("x")) == 409
    assert status_for(e.EventLogError("x")) == 500
    assert ws_close_code_for(e.EventLogError("x")) == 1011


def test_error_bodies_carry_code_message_and_path() -> None:
    response = response_for(SpecError("types[0]", "bad pattern"))
    assert response.status_code == 422
    assert bytes(response.body) == (
        b'{"error":{"code":"invalid_endpoint","message":"types[0]: bad pattern",'
        b'"path":"$.types[0]"}}'
    )
    plain = response_for(e.NotFound("no such source", code="unknown_source"))
    assert bytes(plain.body) == b'{"error":{"code":"unknown_source","message":"no such source"}}'
