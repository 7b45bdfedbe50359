"""Whatever arrives, the pure pipeline answers with one of its three errors or an event."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from server.ingest.mapping import MappingError
from server.ingest.pipeline import Challenge, MalformedBody, prepare
from server.ingest.sources import Source, compile_source
from server.ingest.verify import SignatureError
from tests.server.ingest.senders import SW_SECRET, github_headers

SOURCES = [
    compile_source(msgspec.convert(spec, Source))
    for spec in (
        {
            "name": "g",
            "stream": "s",
            "verify": {"scheme": "github", "secret": "s"},
            "key": "$.a",
            "fields": {"x": "$.b[*]", "y": {"path": "$..c", "required": False}},
        },
        {"name": "st", "stream": "s", "verify": {"scheme": "stripe", "secret": "whsec_x"}},
        {"name": "sw", "stream": "s", "verify": {"scheme": "standard", "secret": SW_SECRET}},
        {"name": "sl", "stream": "s", "verify": {"scheme": "slack", "secret": "s"}},
        {
            "name": "b",
            "stream": "s",
            "verify": {"scheme": "bearer", "token": "t"},
            "type": {"path": "$.t", "default": "d"},
        },
    )
]
HEADER_NAMES = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "Stripe-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "Authorization",
        "Content-Type",
        "X-GitHub-Event",
    ]
)
HEADER_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "sha256=00",
            "t=1,v1=ab",
            "v1,AAAA",
            "v0=ff",
            "Bearer t",
            "1700000000",
            "application/x-www-form-urlencoded",
        ]
    ),
)


def outcome(index: int, headers: dict[str, str], body: bytes) -> str:
    try:
        result = prepare(SOURCES[index], headers, body, now=1_700_000_000)
    except (SignatureError, MalformedBody, MappingError) as exc:
        return type(exc).__name__
    return "challenge" if isinstance(result, Challenge) else "event"


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(SOURCES) - 1),
    st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
    st.binary(max_size=300),
)
def test_arbitrary_requests_never_raise_anything_else(
    index: int, headers: dict[str, str], body: bytes
) -> None:
    assert outcome(index, headers, body) in {
        "SignatureError",
        "MalformedBody",
        "MappingError",
        "challenge",
        "event",
    }


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_authentic_json_body_maps_or_fails_with_a_path(doc: object) -> None:
    body = msgspec.json.encode(doc)
    headers = github_headers(body, secret="s")
    failure: MappingError | None = None
    try:
        event = prepare(SOURCES[0], headers, body, now=1_700_000_000)
    except MappingError as exc:
        failure = exc
    if failure is not None:
        assert failure.path.startswith("$")
        return
    assert not isinstance(event, Challenge)
    assert isinstance(event.data, msgspec.Raw)
    assert msgspec.json.decode(event.data)["payload"] == msgspec.json.decode(body)
