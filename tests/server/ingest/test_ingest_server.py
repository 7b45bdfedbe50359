"""``POST /ingest/{source}`` against a real server: signed as each sender signs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.server.ingest.senders import (
    github_headers,
    slack_headers,
    standard_headers,
    stripe_headers,
)
from tests.serverthread import ServerThread
from tests.support import scaled


def events(client: httpx.Client, stream: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/streams/{stream}/events", params={"from": 0, "limit": 1000})
    if answer.status_code == 404:
        return []
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["events"]
    return result


def error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()["error"]
    assert body["code"] == code, body
    return body


def push(repo: str = "octo/hello") -> bytes:
    return msgspec.json.encode({"ref": "refs/heads/main", "repository": {"full_name": repo}})


# -- GitHub ---------------------------------------------------------------------


def test_github_push_is_appended_with_raw_payload_fields_and_delivery_id(
    client: httpx.Client,
) -> None:
    body = b'{"ref": "refs/heads/main",\n "repository": {"full_name": "octo/hello"}}'
    delivery = str(uuid.uuid4())
    answer = client.post(
        "/ingest/github", content=body, headers=github_headers(body, delivery=delivery)
    )
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["stream"] == "github"
    assert receipt["id"] == delivery
    assert receipt["duplicate"] is False
    (event,) = [e for e in events(client, "github") if e["id"] == delivery]
    assert event["offset"] == receipt["offset"]
    assert event["type"] == "github.push"
    assert event["key"] == "octo/hello"
    assert event["headers"]["ingest-source"] == "github"
    assert event["headers"]["x-github-event"] == "push"
    assert event["data"] == {
        "payload": {"ref": "refs/heads/main", "repository": {"full_name": "octo/hello"}},
        "fields": {"repo": "octo/hello"},
    }


def test_github_redelivery_of_the_same_delivery_id_is_not_appended_twice(
    client: httpx.Client,
) -> None:
    body = push("octo/replay")
    headers = github_headers(body, delivery="replay-" + uuid.uuid4().hex)
    first = client.post("/ingest/github", content=body, headers=headers)
    before = len(events(client, "github"))
    again = client.post("/ingest/github", content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["offset"] == first.json()["offset"]
    assert again.json()["duplicate"] is True
    assert len(events(client, "github")) == before


def test_github_wrong_or_missing_signature_is_401_and_appends_nothing(
    client: httpx.Client,
) -> None:
    before = len(events(client, "github"))
    body = push()
    forged = client.post(
        "/ingest/github", content=body, headers=github_headers(body, secret="guess")
    )
    error(forged, 401, "bad_signature")
    tampered = client.post(
        "/ingest/github", content=push("evil/repo"), headers=github_headers(body, delivery="t-1")
    )
    error(tampered, 401, "bad_signature")
    unsigned = client.post("/ingest/github", content=body, headers={"X-GitHub-Event": "push"})
    assert "X-Hub-Signature-256" in error(unsigned, 401, "missing_signature")["message"]
    assert len(events(client, "github")) == before


def test_the_signature_is_checked_before_the_body_is_parsed(client: httpx.Client) -> None:
    garbage = b"{not json"
    error(
        client.post("/ingest/github", content=garbage, headers=github_headers(garbage, secret="x")),
        401,
        "bad_signature",
    )
    error(
        client.post("/ingest/github", content=garbage, headers=github_headers(garbage)),
        400,
        "malformed_payload",
    )


def test_a_required_mapping_that_fails_is_400_naming_the_path(client: httpx.Client) -> None:
    body = b'{"ref": "refs/heads/main", "repository": {"id": 1}}'
    answer = client.post("/ingest/github", content=body, headers=github_headers(body))
    err = error(answer, 400, "mapping_failed")
    assert err["path"] == "$.repository.full_name"
    assert "'repo'" in err["message"]


def test_a_delivery_id_or_type_the_log_cannot_take_is_400_naming_its_header(
    client: httpx.Client,
) -> None:
    body = push()
    for headers, where, says in (
        (github_headers(body, delivery="d" * 257), "X-GitHub-Delivery", "longer than 256"),
        (github_headers(body, event="p" * 250), "X-GitHub-Event", "longer than 256"),
    ):
        err = error(
            client.post("/ingest/github", content=body, headers=headers), 400, "mapping_failed"
        )
        assert err["path"] == f"header:{where}"
        assert says in err["message"]


def test_github_delivery_posted_with_curl(
    ingest_server: ServerThread, client: httpx.Client
) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    body = push("octo/curl")
    delivery = "curl-" + uuid.uuid4().hex
    args = [curl, "-sS", "-X", "POST", f"{ingest_server.url}/ingest/github", "--data-binary", "@-"]
    for name, value in github_headers(body, delivery=delivery).items():
        args += ["-H", f"{name}: {value}"]
    args += ["-w", "\n%{http_code}"]
    out = subprocess.run(args, input=body, capture_output=True, check=True, timeout=scaled(20))
    text, status = out.stdout.decode().rsplit("\n", 1)
    assert status == "202"
    assert msgspec.json.decode(text)["id"] == delivery


# -- Stripe ---------------------------------------------------------------------


def stripe_event(evt: str) -> bytes:
    return msgspec.json.encode(
        {
            "id": evt,
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "amount": 2000, "customer": "cus_9"}},
        }
    )


def test_stripe_event_is_appended_under_its_event_id(client: httpx.Client) -> None:
    evt = "evt_" + uuid.uuid4().hex
    body = stripe_event(evt)
    answer = client.post("/ingest/stripe", content=body, headers=stripe_headers(body))
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == evt
    (event,) = [e for e in events(client, "payments") if e["id"] == evt]
    assert (event["type"], event["key"]) == ("payment_intent.succeeded", "cus_9")
    assert event["data"]["fields"] == {"amount": 2000}
    # Stripe retries the same event with a fresh timestamp and signature: de-duplicated.
    retry = client.post(
        "/ingest/stripe", content=body, headers=stripe_headers(body, timestamp=int(time.time()) + 5)
    )
    assert retry.json() == {**answer.json(), "duplicate": True}


def test_stripe_expired_timestamp_is_401(client: httpx.Client) -> None:
    body = stripe_event("evt_old")
    old = stripe_headers(body, timestamp=int(time.time()) - 3600)
    err = error(
        client.post("/ingest/stripe", content=body, headers=old), 401, "timestamp_out_of_tolerance"
    )
    assert "tolerance of 300 s" in err["message"]


def test_stripe_signature_keyed_without_the_whsec_prefix_is_401(client: httpx.Client) -> None:
    from tests.server.ingest.senders import STRIPE_SECRET

    body = stripe_event("evt_prefix")
    headers = stripe_headers(body, secret=STRIPE_SECRET.removeprefix("whsec_"))
    error(client.post("/ingest/stripe", content=body, headers=headers), 401, "bad_signature")


# -- Standard Webhooks ----------------------------------------------------------


def order(order_id: int, email: str | None = None) -> bytes:
    data: dict[str, Any] = {"order": {"id": order_id}}
    if email:
        data["customer"] = {"email": email}
    return msgspec.json.encode(
        {"type": "order.created", "timestamp": "2026-11-22T16:00:00Z", "data": data}
    )


def test_standard_webhooks_signed_by_the_library_are_appended_once(client: httpx.Client) -> None:
    msg_id = "msg_" + uuid.uuid4().hex
    body = order(77, "a@example.com")
    first = client.post("/ingest/shop", content=body, headers=standard_headers(body, msg_id=msg_id))
    assert first.status_code == 202, first.text
    # The sender's retry: same webhook-id, new timestamp and signature.
    retry_headers = standard_headers(body, msg_id=msg_id, timestamp=int(time.time()) + 1)
    retry = client.post("/ingest/shop", content=body, headers=retry_headers)
    assert retry.status_code == 202
    assert retry.json()["duplicate"] is True
    assert retry.json()["offset"] == first.json()["offset"]
    (event,) = [e for e in events(client, "orders") if e["id"] == msg_id]
    assert event["key"] == "77"
    assert event["data"]["fields"] == {"order_id": 77, "email": "a@example.com"}


def test_standard_webhooks_expired_and_wrong_secret_are_401(client: httpx.Client) -> None:
    body = order(1)
    stale = standard_headers(body, timestamp=int(time.time()) - 600)
    error(
        client.post("/ingest/shop", content=body, headers=stale), 401, "timestamp_out_of_tolerance"
    )
    other = standard_headers(body, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUA==")
    error(client.post("/ingest/shop", content=body, headers=other), 401, "bad_signature")


def test_standard_webhooks_optional_field_absent_is_left_out(client: httpx.Client) -> None:
    msg_id = "msg_" + uuid.uuid4().hex
    body = order(5)
    answer = client.post(
        "/ingest/shop", content=body, headers=standard_headers(body, msg_id=msg_id)
    )
    assert answer.status_code == 202
    (event,) = [e for e in events(client, "orders") if e["id"] == msg_id]
    assert event["data"]["fields"] == {"order_id": 5}


# -- Slack ----------------------------------------------------------------------


def test_slack_url_verification_handshake_is_answered(client: httpx.Client) -> None:
    body = b'{"token":"Jhj5dZrVaK7Zw","challenge":"3eZbrw1aBm2rZ","type":"url_verification"}'
    answer = client.post("/ingest/slack", content=body, headers=slack_headers(body))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZ"}


def test_slack_event_callback_is_appended_and_retries_deduplicated(client: httpx.Client) -> None:
    event_id = "Ev" + uuid.uuid4().hex[:10].upper()
    body = msgspec.json.encode(
        {
            "type": "event_callback",
            "event_id": event_id,
            "event": {"type": "app_mention", "text": "<@U0LAN0Z89> is it everything?"},
        }
    )
    first = client.post("/ingest/slack", content=body, headers=slack_headers(body))
    assert first.status_code == 202, first.text
    retry = {
        **slack_headers(body),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    assert client.post("/ingest/slack", content=body, headers=retry).json()["duplicate"] is True
    (event,) = [e for e in events(client, "chat") if e["id"] == event_id]
    assert event["type"] == "slack.app_mention"


def test_slack_stale_request_is_401(client: httpx.Client) -> None:
    body = b'{"type":"event_callback","event":{"type":"message"}}'
    stale = slack_headers(body, timestamp=int(time.time()) - 301)
    error(
        client.post("/ingest/slack", content=body, headers=stale), 401, "timestamp_out_of_tolerance"
    )


# -- bearer, limits, unknown sources ---------------------------------------------


def test_bearer_source_with_type_from_header(client: httpx.Client) -> None:
    headers = {"Authorization": "Bearer ci-token-1", "X-Build-Event": "build.finished"}
    answer = client.post("/ingest/ci", json={"build": 12, "ok": True}, headers=headers)
    assert answer.status_code == 202, answer.text
    missing_type = client.post(
        "/ingest/ci", json={}, headers={"Authorization": "Bearer ci-token-1"}
    )
    assert error(missing_type, 400, "mapping_failed")["path"] == "header:X-Build-Event"
    error(
        client.post("/ingest/ci", json={}, headers={"Authorization": "Bearer nope"}),
        401,
        "bad_signature",
    )


def test_body_over_the_source_limit_is_413_declared_or_chunked(client: httpx.Client) -> None:
    headers = {"Authorization": "Bearer ci-token-1", "X-Build-Event": "build.log"}
    big = b'{"log": "' + b"x" * 2000 + b'"}'
    error(client.post("/ingest/ci", content=big, headers=headers), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    error(client.post("/ingest/ci", content=chunks(), headers=headers), 413, "payload_too_large")
    assert client.post("/ingest/ci", content=b"{}", headers=headers).status_code == 202


def test_unknown_source_is_404(client: httpx.Client) -> None:
    err = error(client.post("/ingest/gitlab", content=b"{}"), 404, "unknown_source")
    assert "gitlab" in err["message"]


def test_malformed_requests_get_4xx_json_never_500(client: httpx.Client) -> None:
    headers = {"Authorization": "Bearer ci-token-1", "X-Build-Event": "x"}
    for body, ctype in [
        (b"\xff\xfe\x00", "application/json"),
        (b"a=%ff", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
    ]:
        answer = client.post("/ingest/ci", content=body, headers={**headers, "Content-Type": ctype})
        assert 400 <= answer.status_code < 500, (body[:20], answer.text)
    assert client.get("/ingest/ci").status_code == 405
    # Invalid UTF-8 inside a string of otherwise well-formed JSON, or of a form's JSON payload.
    for body, ctype in [
        (b'{"log": "\xff"}', "application/json"),
        (b"payload=%7B%22a%22%3A%22%FF%22%7D", "application/x-www-form-urlencoded"),
    ]:
        answer = client.post("/ingest/ci", content=body, headers={**headers, "Content-Type": ctype})
        error(answer, 400, "malformed_payload")
    # Signed, and nested deeper than any decoder recurses: still a 400, not a 500.
    deep = b"[" * 200_000 + b"]" * 200_000
    answer = client.post("/ingest/github", content=deep, headers=github_headers(deep))
    error(answer, 400, "malformed_payload")


async def test_concurrent_redeliveries_of_one_delivery_append_exactly_once(
    ingest_server: ServerThread,
) -> None:
    body = push("octo/race")
    delivery = "race-" + uuid.uuid4().hex
    headers = github_headers(body, delivery=delivery)
    async with httpx.AsyncClient(base_url=ingest_server.url, timeout=scaled(20)) as client:
        answers = await asyncio.gather(
            *(client.post("/ingest/github", content=body, headers=headers) for _ in range(20))
        )
        assert {a.status_code for a in answers} == {202}
        assert len({a.json()["offset"] for a in answers}) == 1
        assert sum(not a.json()["duplicate"] for a in answers) == 1
        page = await client.get("/api/streams/github/events", params={"from": 0, "limit": 1000})
    assert [e["id"] for e in page.json()["events"]].count(delivery) == 1


def test_outcomes_are_counted_per_source_on_metrics(client: httpx.Client) -> None:
    body = push("octo/metrics")
    client.post("/ingest/github", content=body, headers=github_headers(body, secret="wrong"))
    text = client.get("/metrics").text
    line = 'eventlog_ingest_requests_total{outcome="bad_signature",source="github"}'
    assert any(row.startswith(line) and float(row.split()[-1]) >= 1 for row in text.splitlines())
