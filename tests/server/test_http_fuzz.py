"""Property-based fuzzing of the HTTP API against a real server: whatever the
request, the answer is a JSON 2xx/4xx (never a 5xx, never a hang), and only
201 answers change the log."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CONTENT_TYPES = [
    "application/json",
    "application/x-ndjson",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "text/plain",
    "",
]
names = st.one_of(
    st.sampled_from(["fz", "fz.a", "fz-b", "fz_c"]),
    st.text(min_size=1, max_size=12).filter(
        lambda s: "/" not in s and "?" not in s and "#" not in s
    ),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(st.text(max_size=10), st.integers()),
        "data": json_values,
        "key": st.one_of(st.none(), st.text(max_size=8), st.integers()),
        "id": st.one_of(st.none(), st.text(max_size=8)),
        "headers": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), scalars),
        "specversion": st.sampled_from(["1.0", "0.3"]),
        "source": st.text(max_size=5),
        "extra": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    event_like.map(msgspec.json.encode),
    st.lists(event_like, max_size=4).map(msgspec.json.encode),
    st.lists(event_like, max_size=4).map(lambda es: b"\n".join(msgspec.json.encode(e) for e in es)),
    json_values.map(msgspec.json.encode),
)
params = st.dictionaries(
    st.sampled_from(["from", "limit", "wait", "expected_offset"]),
    st.one_of(st.integers(-5, 20).map(str), st.text(max_size=6)),
    max_size=3,
)


def _check(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzzed_requests_never_get_5xx_and_only_201_writes(
    client: httpx.Client, data: st.DataObject
) -> None:
    stream = quote(data.draw(names), safe="")
    method = data.draw(st.sampled_from(["POST", "GET", "PUT", "DELETE"]))
    query: dict[str, Any] = data.draw(params)
    c = client  # one keep-alive connection for every example
    before = _total(c)
    if method == "POST":
        content_type = data.draw(st.sampled_from(CONTENT_TYPES))
        headers = {"content-type": content_type} if content_type else {}
        key = data.draw(st.one_of(st.none(), st.text(max_size=5)))
        if key is not None and key.isascii() and key.isprintable():
            headers["idempotency-key"] = key
        r = c.post(
            f"/api/streams/{stream}/events",
            content=data.draw(bodies),
            headers=headers,
            params=query,
        )
        _check(r)
        written = r.json()["written"] if r.status_code == 201 else 0
        assert _total(c) == before + written
    elif method == "GET":
        query["wait"] = "0"
        _check(c.get(f"/api/streams/{stream}/events", params=query))
        _check(c.get(f"/api/streams/{stream}"))
        _check(c.get(f"/api/consumers/{stream}"))
    elif method == "PUT":
        body = data.draw(bodies)
        r = c.put(
            f"/api/consumers/{stream}",
            content=body,
            headers={"content-type": "application/json"},
        )
        _check(r)
    else:
        _check(c.delete(f"/api/streams/{stream}"))


def _total(c: httpx.Client) -> int:
    r = c.get("/api/streams")
    assert r.status_code == 200
    return sum(s["next_offset"] for s in r.json()["streams"])
