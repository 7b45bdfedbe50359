"""``/openapi.json`` describes every route the app serves, and is a valid OpenAPI 3.1 document.

The routes come from the app itself (``create_app(...).routes``), so a route
added without its description fails here. The document is fetched from a real
``eventlog serve`` process and checked with ``openapi-spec-validator``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from eventlog import EventLog, LogConfig
from eventlog.log import storage_for
from server.app import create_app
from tests.serverthread import ServerThread
from tests.support import scaled

_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _routes(list(route.routes), prefix + route.path)
        else:
            yield prefix + getattr(route, "path", ""), route


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    with ServerThread.start(db=tmp_path_factory.mktemp("openapi") / "events.db") as proc:
        yield proc


@pytest.fixture(scope="module")
def document(served: ServerThread) -> dict[str, Any]:
    """/openapi.json as the server sends it."""
    answer = httpx.get(served.url + "/openapi.json", timeout=scaled(10))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = answer.json()
    return doc


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, BaseRoute]]:
    """Every route of an app built the way ``eventlog serve`` builds it."""
    db = tmp_path_factory.mktemp("routes") / "events.db"
    log = EventLog(storage_for(str(db), LogConfig()), LogConfig())
    app = create_app(log, manage_log=True)  # as serve does; never started: routes only
    return list(_routes(list(app.routes)))


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_http_route_and_method_is_described(
    document: dict[str, Any], app_routes: list[tuple[str, BaseRoute]]
) -> None:
    http = [(path, r) for path, r in app_routes if isinstance(r, Route)]
    assert len(http) > 40  # the walk found the feature routes, not only the core
    missing = []
    for path, route in http:
        described = document["paths"].get(path, {})
        for method in {m.lower() for m in route.methods or ()} - {"head"}:
            if method not in described:
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes missing from /openapi.json: {missing}"


def test_the_document_describes_no_route_the_app_lacks(
    document: dict[str, Any], app_routes: list[tuple[str, BaseRoute]]
) -> None:
    served = {
        (path, m.lower()) for path, r in app_routes if isinstance(r, Route) for m in r.methods or ()
    }
    for path, ops in document["paths"].items():
        for method in set(ops) & _METHODS:
            assert (path, method) in served, f"{method.upper()} {path} is not served"


def test_websocket_routes_are_in_the_extension(
    document: dict[str, Any], app_routes: list[tuple[str, BaseRoute]]
) -> None:
    ws = {path for path, r in app_routes if isinstance(r, WebSocketRoute)}
    assert ws  # the firehose
    listed = {w["path"]: w for w in document["x-websockets"]}
    assert ws == set(listed)
    for entry in listed.values():
        assert {"1000", "4008", "4416"} <= set(entry["close_codes"])
        assert {p["name"] for p in entry["parameters"]} >= {"from", "types", "key", "batch"}


def test_every_path_parameter_is_declared_and_every_operation_answers_errors(
    document: dict[str, Any],
) -> None:
    for path, ops in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}: {declared} != {names}"
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), f"{method.upper()} {path}"
            if path.startswith(("/api/", "/ingest/")):
                errors = [c for c in codes if c[0] in "45"]
                assert errors, f"{method.upper()} {path} lists no error answer"
                for code in errors:
                    schema = op["responses"][code]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}


def test_feature_routes_name_their_errors(document: dict[str, Any]) -> None:
    paths = document["paths"]
    ingest = paths["/ingest/{source}"]["post"]
    assert ingest["security"] == []  # the sender's signature, not an API key
    assert {"202", "400", "401", "404", "413"} <= set(ingest["responses"])
    replay = paths["/api/webhooks/{id}/replay"]["post"]["responses"]
    assert {"200", "202", "403", "404"} <= set(replay)
    rotate = paths["/api/webhooks/{id}/rotate-secret"]["post"]
    assert rotate["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RotateRequest"
    }
    assert "/api/notifications/{id}/rotate-secret" not in paths
    sse = paths["/api/streams/{stream}/sse"]["get"]
    assert "text/event-stream" in sse["responses"]["200"]["content"]
    assert {p["name"] for p in sse["parameters"]} >= {"stream", "from", "Last-Event-ID"}
    schemas = document["components"]["schemas"]
    assert {"EndpointSpec", "EndpointPatch", "Source", "ReplayRequest"} <= set(schemas)
    assert "url" in schemas["EndpointSpec"]["properties"]


def test_docs_page_lists_the_feature_routes(served: ServerThread) -> None:
    page = httpx.get(served.url + "/docs", timeout=scaled(10)).text
    assert "POST</span> <code>/ingest/{source}</code>" in page
    assert "GET</span> <code>/api/streams/{stream}/sse</code>" in page
    assert "POST</span> <code>/api/webhooks/{id}/replay</code>" in page


def test_described_errors_are_what_the_server_answers(served: ServerThread) -> None:
    """Spot checks of documented error answers against the running server."""
    with httpx.Client(base_url=served.url, timeout=scaled(10)) as client:
        r = client.post("/ingest/nope", json={})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_source"
        r = client.get("/api/webhooks/nope")
        assert r.status_code == 404
        assert "error" in r.json()
        r = client.get("/api/streams/events/sse", params={"from": "soon"})
        assert r.status_code == 400
        assert "error" in r.json()
        r = client.get("/api/ingest/sources/nope")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_source"


def test_openapi_document_matches_the_wire_structs_and_routes() -> None:
    from server.api import append_body, consumers, streams, system
    from server.api.docs_page import docs_html
    from server.api.openapi import openapi_document

    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    wire = {f.name for f in msgspec.structs.fields(append_body.EventIn)}
    assert set(schemas["EventIn"]["properties"]) == wire
    assert set(schemas["Event"]["properties"]) == {
        "stream",
        "offset",
        "id",
        "type",
        "key",
        "time",
        "headers",
        "data",
    }
    for route in streams.routes + consumers.routes + system.routes:
        path = getattr(route, "path", "")
        if path not in ("/openapi.json", "/docs"):
            methods = {m.lower() for m in getattr(route, "methods", set())} - {"head"}
            assert methods <= set(doc["paths"][path]), path
    page = docs_html()
    assert "POST</span> <code>/api/streams/{stream}/events</code>" in page
