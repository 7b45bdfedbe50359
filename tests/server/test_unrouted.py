"""A path that differs from a route only by a trailing slash gets a JSON 404 naming
the route's path, never an empty 307 (server/unrouted.py); only the browser pages
``/ui`` and ``/docs`` redirect a ``GET``. Against a real ``eventlog serve``, whose
:class:`server.front.Front` serves appends without the router."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.api.openapi import openapi_document
from tests.serverproc import ServerProcess
from tests.support import scaled

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.start(db=tmp_path_factory.mktemp("unrouted") / "events.db") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(served: ServerProcess) -> Iterator[httpx.Client]:
    # follow_redirects=False (httpx's default) is the point: a producer that does
    # not follow them must still see an error.
    with httpx.Client(base_url=served.url, timeout=scaled(10)) as c:
        yield c


def _not_found(r: httpx.Response, method: str, path: str, hint: str | None) -> None:
    assert r.status_code == 404, (method, path, r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == "not_found"
    expected = f"no route {method} {path}" + (f"; did you mean {hint}?" if hint else "")
    assert error["message"] == expected


def test_append_with_a_trailing_slash_is_a_json_404_naming_the_route_and_appends_nothing(
    client: httpx.Client,
) -> None:
    r = client.post("/api/streams/slashed/events/", content=b'{"type": "t"}', headers=JSON)
    _not_found(r, "POST", "/api/streams/slashed/events/", "/api/streams/slashed/events")
    assert client.get("/api/streams/slashed").status_code == 404  # nothing was appended
    r = client.post("/api/streams/slashed/events", content=b'{"type": "t"}', headers=JSON)
    assert r.status_code == 201, r.text  # the named path works


@pytest.mark.parametrize(
    ("method", "path", "hint"),
    [
        ("GET", "/api/streams/orders/events/", "/api/streams/orders/events"),
        ("GET", "/api/streams/", "/api/streams"),
        ("GET", "/api/streams/orders/", "/api/streams/orders"),
        ("DELETE", "/api/streams/orders/", "/api/streams/orders"),
        ("PUT", "/api/consumers/billing/", "/api/consumers/billing"),
        ("POST", "/api/webhooks/", "/api/webhooks"),
        ("DELETE", "/api/webhooks/ep_1/", "/api/webhooks/ep_1"),
        ("POST", "/ingest/github/", "/ingest/github"),
        ("GET", "/api/streams/orders/events//", "/api/streams/orders/events"),
        ("GET", "/healthz/", "/healthz"),  # a probe counts a 3xx as healthy
        ("GET", "/readyz/", "/readyz"),
        ("GET", "/openapi.json/", "/openapi.json"),
        ("POST", "/docs/", "/docs"),  # a page, but not a GET
        ("GET", "/api/nope", None),
        ("POST", "/api/nope/", None),
    ],
)
def test_a_trailing_slash_miss_is_a_json_404_with_the_path_to_use(
    client: httpx.Client, method: str, path: str, hint: str | None
) -> None:
    r = client.request(method, path, content=b"{}", headers=JSON)
    _not_found(r, method, path, hint)


def _filled(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", template)


def test_every_documented_operation_with_a_trailing_slash_names_its_path(
    client: httpx.Client,
) -> None:
    operations: list[tuple[str, str]] = []
    for template, item in openapi_document()["paths"].items():
        path = _filled(template)
        for method in item:
            if method in ("get", "post", "put", "patch", "delete") and path != "/docs":
                operations.append((method.upper(), path))
    assert len(operations) > 40
    for method, path in operations:
        r = client.request(method, path + "/", content=b"{}", headers=JSON)
        _not_found(r, method, path + "/", path)


def test_browser_pages_redirect_a_get_to_their_other_spelling(
    client: httpx.Client, served: ServerProcess
) -> None:
    for method in ("GET", "HEAD"):
        r = client.request(method, "/ui")
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{served.url}/ui/"
        r = client.request(method, "/docs/")
        assert r.status_code == 307, r.text
        assert r.headers["location"] == f"{served.url}/docs"
    assert client.get("/ui/").status_code == 200
    assert client.get("/docs").status_code == 200


def test_the_openapi_document_is_the_one_the_routes_are_described_by(
    client: httpx.Client,
) -> None:
    served: dict[str, Any] = client.get("/openapi.json").json()
    assert served == openapi_document()
    assert not [path for path in served["paths"] if path.endswith("/")]
