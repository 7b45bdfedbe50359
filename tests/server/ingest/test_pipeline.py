"""From raw request to the event to append (pure): verify first, then decode, then map."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest

from server.ingest.mapping import MappingError
from server.ingest.pipeline import Challenge, MalformedBody, decode_body, prepare
from server.ingest.sources import CompiledSource, Source, compile_source
from server.ingest.verify import SignatureError
from tests.server.ingest.senders import SLACK_SECRET, github_headers, slack_headers, stripe_headers


def compiled(**spec: Any) -> CompiledSource:
    return compile_source(msgspec.convert(spec, Source))


GITHUB = compiled(
    name="gh",
    stream="github",
    verify={"scheme": "github", "secret": "It's a Secret to Everybody"},
    key="$.repository.full_name",
    fields={"repo": "$.repository.full_name", "action": {"path": "$.action", "required": False}},
    headers=["X-GitHub-Event", "X-GitHub-Hook-ID"],
)


def test_a_github_push_becomes_an_event_with_raw_payload_and_fields() -> None:
    body = b'{"ref":"refs/heads/main",  "repository":{"full_name":"octo/hello"}}'
    event = prepare(GITHUB, github_headers(body, delivery="72d3162e"), body, now=time.time())
    assert not isinstance(event, Challenge)
    assert (event.type, event.key, event.id) == ("github.push", "octo/hello", "72d3162e")
    assert event.headers == {"ingest-source": "gh", "x-github-event": "push"}
    assert isinstance(event.data, msgspec.Raw)
    # The payload is kept byte for byte (note the two spaces), fields beside it.
    assert bytes(event.data) == (
        b'{"payload":{"ref":"refs/heads/main",  "repository":{"full_name":"octo/hello"}},'
        b'"fields":{"repo":"octo/hello"}}'
    )


def test_the_signature_is_checked_before_the_body_is_parsed() -> None:
    body = b"this is not json"
    headers = github_headers(body, secret="wrong")
    with pytest.raises(SignatureError):
        prepare(GITHUB, headers, body, now=time.time())
    with pytest.raises(MalformedBody, match="not JSON"):
        prepare(GITHUB, github_headers(body), body, now=time.time())


def test_a_required_field_missing_names_its_path() -> None:
    body = b'{"repository":{}}'
    with pytest.raises(MappingError) as exc:
        prepare(GITHUB, github_headers(body), body, now=time.time())
    assert exc.value.path == "$.repository.full_name"


def test_without_a_delivery_id_the_event_gets_a_fresh_uuid7() -> None:
    src = compiled(name="b", stream="s", verify={"scheme": "bearer", "token": "t"}, type="ping")
    one = prepare(src, {"Authorization": "Bearer t"}, b"{}", now=0)
    two = prepare(src, {"Authorization": "Bearer t"}, b"{}", now=0)
    assert not isinstance(one, Challenge)
    assert not isinstance(two, Challenge)
    assert one.id != two.id
    assert one.id is not None
    assert one.id[14] == "7"  # UUIDv7


def test_stripe_event_id_from_the_body_is_the_event_id() -> None:
    src = compiled(name="st", stream="pay", verify={"scheme": "stripe", "secret": "whsec_abc"})
    body = b'{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"invoice.paid","data":{"object":{}}}'
    event = prepare(src, stripe_headers(body, secret="whsec_abc"), body, now=time.time())
    assert not isinstance(event, Challenge)
    assert (event.id, event.type) == ("evt_1NG8Du2eZvKYlo2CUI79vXWy", "invoice.paid")


SLACK = compiled(
    name="slack",
    stream="chat",
    verify={"scheme": "slack", "secret": SLACK_SECRET},
    type={"path": "$.event.type", "prefix": "slack.", "default": "slack.command"},
)


def test_slack_url_verification_is_answered_not_appended() -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = b'{"token":"x","challenge":"%s","type":"url_verification"}' % challenge.encode()
    outcome = prepare(SLACK, slack_headers(body), body, now=time.time())
    assert outcome == Challenge(challenge)


def test_slack_slash_command_form_body_maps_as_an_object_of_strings() -> None:
    body = urlencode({"command": "/deploy", "text": "api prod", "user_id": "U1"}).encode()
    headers = slack_headers(body, content_type="application/x-www-form-urlencoded")
    event = prepare(SLACK, headers, body, now=time.time())
    assert not isinstance(event, Challenge)
    assert event.type == "slack.command"
    assert isinstance(event.data, msgspec.Raw)
    assert msgspec.json.decode(event.data)["payload"] == {
        "command": "/deploy",
        "text": "api prod",
        "user_id": "U1",
    }


def test_decode_body_takes_a_json_payload_form_field_as_the_document() -> None:
    inner = b'{"action":"opened","number":7}'
    body = urlencode({"payload": inner.decode()}).encode()
    doc, raw = decode_body("application/x-www-form-urlencoded; charset=utf-8", body)
    assert doc == {"action": "opened", "number": 7}
    assert raw == inner


def test_a_json_body_labelled_as_a_form_by_curl_is_json() -> None:
    assert decode_body("application/x-www-form-urlencoded", b' {"a":1}') == ({"a": 1}, b' {"a":1}')


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{"),
        ("application/json", b"\xff\xfe"),
        ("", b"[" * 100_000 + b"]" * 100_000),
        ("application/x-www-form-urlencoded", b"a=%ff"),
        ("application/x-www-form-urlencoded", b"&".join(b"k%d=v" % i for i in range(1001))),
    ],
)
def test_undecodable_bodies_are_malformed_not_crashes(content_type: str, body: bytes) -> None:
    with pytest.raises(MalformedBody):
        decode_body(content_type, body)
