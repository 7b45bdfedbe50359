"""``/openapi.json`` says what the server does: its schemas are the decoders' own, its limits
the server's, and the routes it leaves out of the schemathesis run are checked here.

(``test_schemathesis.py`` checks the rest with generated requests.)
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from jsonschema import Draft202012Validator

from consumers.notify.spec import NotifyPatch, NotifySpec
from consumers.webhook import EndpointPatch, EndpointSpec
from eventlog import encoding
from server.api import append_body, openapi
from server.api.consumers import SeekRequest
from server.api.endpoint_routes import ReplayRequest
from server.api.webhooks import RotateRequest
from server.ingest.sources import Source
from tests.serverproc import ServerProcess
from tests.support import scaled

REF = "#/components/schemas/{name}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with a small read limit, allowed to deliver to loopback only."""
    path = tmp_path_factory.mktemp("agreement")
    config = path / "eventlog.toml"
    config.write_text("max_read_limit = 50\n[webhooks]\nallow_private_targets = true\n")
    with ServerProcess.start(db=path / "events.db", extra_args=["--config", str(config)]) as proc:
        yield proc


@pytest.fixture(scope="module")
def document(server: ServerProcess) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{server.url}/openapi.json", timeout=scaled(10)).json()
    return doc


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as client:
        yield client


def _fields(struct: type[msgspec.Struct]) -> dict[str, tuple[bool, object]]:
    return {f.name: (f.required, f.default) for f in msgspec.structs.fields(struct)}


def test_the_documented_event_has_the_decoders_fields_and_limits() -> None:
    documented, real = openapi.EventIn, append_body.EventIn
    assert _fields(documented).keys() == _fields(real).keys()
    for name in ("type", "key", "id", "headers"):
        assert _fields(documented)[name] == _fields(real)[name], name
    schema = msgspec.json.schema(documented)["$defs"]["EventIn"]["properties"]
    for name, limits in (("type", (1, 256)), ("id", (1, 256))):
        assert (schema[name]["anyOf"][0] if "anyOf" in schema[name] else schema[name]) | {} == {
            "type": "string",
            "minLength": limits[0],
            "maxLength": limits[1],
            "pattern": openapi.NO_NUL,
        }
    assert encoding.MAX_TYPE_LENGTH == encoding.MAX_ID_LENGTH == 256


@pytest.mark.parametrize(
    "struct",
    [EndpointSpec, EndpointPatch, NotifySpec, NotifyPatch, RotateRequest, SeekRequest, Source],
)
def test_request_schemas_are_generated_from_the_structs_the_routes_decode(
    document: dict[str, Any], struct: type[msgspec.Struct]
) -> None:
    _, components = msgspec.json.schema_components([struct], ref_template=REF)
    generated = msgspec.json.decode(msgspec.json.encode(components))
    for name, schema in generated.items():
        if name == "AtTime":  # the time's pattern is added: msgspec's is a bare string
            assert document["components"]["schemas"][name]["properties"]["time"]["pattern"]
            continue
        if name == "EndpointSpec":  # decoded alone, so its tag ("kind") may be left out
            schema["required"].remove("kind")
        assert document["components"]["schemas"][name] == schema, name


def test_replay_times_are_rfc3339_in_the_schema(document: dict[str, Any]) -> None:
    replay = document["components"]["schemas"]["ReplayRequest"]["properties"]
    pattern = re.compile(replay["from_time"]["anyOf"][0]["pattern"])
    assert pattern.match("2026-11-22T16:46:17Z")
    assert pattern.match("2026-11-22T16:46:17.5")
    assert not pattern.match("yesterday")
    assert set(_fields(ReplayRequest)) == set(replay)


def test_the_read_limit_in_the_document_is_the_servers(document: dict[str, Any]) -> None:
    params = document["paths"]["/api/streams/{stream}/events"]["get"]["parameters"]
    (limit,) = [p for p in params if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 50


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/streams/s/events", "GET, HEAD, POST"),
        ("/api/streams/s", "DELETE, GET, HEAD"),
        ("/api/consumers/c", "GET, HEAD, PUT"),
        ("/api/ingest/sources", "GET, HEAD, POST"),
        ("/api/ingest/sources/x", "DELETE, GET, HEAD, PUT"),
        ("/api/webhooks/x", "DELETE, GET, HEAD, PATCH"),
    ],
)
def test_an_unserved_method_is_405_with_every_method_of_the_path_in_allow(
    api: httpx.Client, path: str, allowed: str
) -> None:
    for method in ("OPTIONS", "TRACE"):
        r = api.request(method, path)
        assert r.status_code == 405
        assert r.headers["allow"] == allowed
        assert r.json()["error"]["code"] == "method_not_allowed"


_HOOK = "http://127.0.0.1:9/api/webhooks/1/tok"  # loopback: nothing listens on port 9

CREATE_CASES = [
    (
        "/api/webhooks",
        "EndpointSpec",
        [
            {"url": "http://127.0.0.1:9/a"},
            {"url": "http://127.0.0.1:9/b", "id": "agree-b", "stream": "agree", "types": ["o.*"]},
            {"url": "http://127.0.0.1:9/c", "ordering": "per-key", "max_in_flight": 3},
        ],
        [
            {},
            {"url": 5},
            {"url": "http://127.0.0.1:9/", "nope": 1},
            {"url": "http://127.0.0.1:9/", "ordering": "sometimes"},
            {"url": "http://127.0.0.1:9/", "types": "o.*"},
            {"url": "http://127.0.0.1:9/", "timeout": "slow"},
        ],
    ),
    (
        "/api/notifications",
        "NotifySpec",
        [
            {"kind": "discord", "url": _HOOK},
            {"kind": "slack", "url": _HOOK, "id": "agree-slack", "ordering": "per-key"},
            {"kind": "apprise", "url": "json://127.0.0.1:9/x", "options": {"title": "{type}"}},
        ],
        [
            {"url": _HOOK},
            {"kind": "teams", "url": _HOOK},
            {"kind": "discord"},
            {"kind": "discord", "url": _HOOK, "start": "middle"},
            {"kind": "discord", "url": _HOOK, "extra": True},
            {"kind": "discord", "url": _HOOK, "rate_limit": "fast"},
        ],
    ),
]


@pytest.mark.parametrize(("route", "component", "good", "bad"), CREATE_CASES)
def test_create_bodies_the_schema_refuses_are_refused_and_ones_it_accepts_are_taken(
    api: httpx.Client,
    document: dict[str, Any],
    route: str,
    component: str,
    good: list[dict[str, Any]],
    bad: list[dict[str, Any]],
) -> None:
    """The create routes are out of the generated run (they would send to generated
    URLs): here the schema and the server judge the same bodies, all naming loopback."""
    schemas = document["components"]["schemas"]
    validator = Draft202012Validator(
        {"$ref": REF.format(name=component), "components": {"schemas": schemas}}
    )
    for body in good:
        assert validator.is_valid(body), body
        r = api.post(route, json=body)
        assert r.status_code == 201, r.text
    for body in bad:
        assert not validator.is_valid(body), body
        r = api.post(route, json=body)
        assert r.status_code in (400, 422), (body, r.text)


def test_a_change_or_a_replay_without_a_body_is_refused(api: httpx.Client) -> None:
    assert api.post("/api/streams/bodyless/events", json={"type": "t"}).status_code == 201
    r = api.post(
        "/api/webhooks",
        json={"url": "http://127.0.0.1:9/x", "id": "bodyless", "stream": "bodyless"},
    )
    assert r.status_code == 201, r.text
    for method, path in (
        ("PATCH", "/api/webhooks/bodyless"),
        ("POST", "/api/webhooks/bodyless/replay"),
    ):
        r = api.request(method, path)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == {"code": "empty_body", "message": "a JSON body is required"}
    deliveries = api.get("/api/webhooks/bodyless/deliveries").json()["deliveries"]
    assert deliveries == []  # nothing was scheduled
    # rotate-secret takes no body at all (every field has a default)
    assert api.post("/api/webhooks/bodyless/rotate-secret").status_code == 200


def test_the_docs_page_renders_markdown_and_each_route_its_own_answers(
    api: httpx.Client,
) -> None:
    page = api.get("/docs").text
    assert "`" not in page  # every `code` span rendered
    assert "<code>path</code>" in page
    assert "<code>expected_offset</code>" in page
    sections = {
        (m.group(1), html.unescape(m.group(2))): m.group(3)
        for m in re.finditer(
            r"<span class='m'>(\w+)</span> <code>([^<]+)</code></h3>(.*?)(?=<h3>|</body>)", page
        )
    }
    rotate = sections["POST", "/api/webhooks/{id}/rotate-secret"]
    assert "expected_offset" not in rotate
    assert "event or batch" not in rotate
    assert "Not a valid secret or grace" in rotate
    listing = sections["GET", "/api/webhooks"]
    assert "Every webhook endpoint" in listing
    append = sections["POST", "/api/streams/{stream}/events"]
    assert "does not match the stream" in append
