"""``eventlog serve``'s outermost layer (server/front.py) on a real uvicorn.

Appends skip uvicorn's proxy-header layer and Starlette's outer layers; what
those did must still happen: a trusted proxy's ``X-Forwarded-For`` names the
client, and a bug answers the app's 500 JSON and is logged with its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from server.api import streams
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until_sync

APPEND = "/api/streams/{}/events"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread.start(db=tmp_path / "events.db") as server:
        yield server


def _access_line(server: ServerThread, cid: str) -> str:
    """The request line of the request with correlation id ``cid``."""
    found: list[str] = []

    def logged() -> bool:
        found[:] = [line for line in server.output().splitlines() if f"cid={cid} " in line]
        return bool(found)

    wait_until_sync(logged, 5, what=f"the request line of {cid}")
    [line] = found
    return line


def test_a_trusted_proxy_names_the_client_of_an_append_and_of_other_routes(
    served: ServerThread,
) -> None:
    forwarded = {"x-forwarded-for": "203.0.113.7:4711", "x-forwarded-proto": "https"}
    with httpx.Client(base_url=served.url, timeout=scaled(10)) as client:
        r = client.post(
            APPEND.format("p"),
            json={"type": "a"},
            headers={"x-correlation-id": "fw-1", **forwarded},
        )
        assert r.status_code == 201
        r = client.get("/healthz", headers={"x-correlation-id": "fw-2", **forwarded})
        assert r.status_code == 200
        r = client.post(
            APPEND.format("p"), json={"type": "a"}, headers={"x-correlation-id": "fw-3"}
        )
        assert r.status_code == 201
    assert "route=/api/streams/{stream}/events" in _access_line(served, "fw-1")
    assert _access_line(served, "fw-1").endswith(" client=203.0.113.7:4711")
    assert _access_line(served, "fw-2").endswith(" client=203.0.113.7:4711")
    assert re.search(r" client=127\.0\.0\.1:\d+$", _access_line(served, "fw-3"))
    assert "203.0.113.7" not in _access_line(served, "fw-3")


def test_an_untrusted_client_cannot_name_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")  # uvicorn's setting: not loopback
    with (
        ServerThread.start(db=tmp_path / "events.db") as server,
        httpx.Client(base_url=server.url, timeout=scaled(10)) as client,
    ):
        headers = {"x-correlation-id": "fw-4", "x-forwarded-for": "203.0.113.7"}
        assert client.post(APPEND.format("p"), json={"type": "a"}, headers=headers).is_success
        assert re.search(r" client=127\.0\.0\.1:\d+$", _access_line(server, "fw-4"))


def test_a_bug_in_an_append_answers_the_apps_500_and_is_logged(
    served: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(request: Request) -> tuple[int, bytes]:
        raise RuntimeError("a bug in the append path")

    monkeypatch.setattr(streams, "append_answer", broken)
    with httpx.Client(base_url=served.url, timeout=scaled(10)) as client:
        r = client.post(
            APPEND.format("b"), json={"type": "a"}, headers={"x-correlation-id": "bug-1"}
        )
        assert r.status_code == 500
        assert r.headers["x-correlation-id"] == "bug-1"
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "error": {"code": "internal_error", "message": "internal error (a bug in eventlog)"}
        }
    monkeypatch.undo()
    # A new connection: as after any bug, uvicorn closes the one that met it.
    with httpx.Client(base_url=served.url, timeout=scaled(10)) as client:
        assert client.post(APPEND.format("b"), json={"type": "a"}).status_code == 201
        metrics = client.get("/metrics").text
    line = _access_line(served, "bug-1")
    assert " status=500 " in line
    assert "route=/api/streams/{stream}/events" in line
    output = served.output()
    assert "logger=eventlog.server msg=unhandled error on POST /api/streams/b/events" in output
    assert "RuntimeError: a bug in the append path" in output
    assert "raise RuntimeError" in output  # the traceback
    route = 'route="/api/streams/{stream}/events"'
    assert f'eventlog_http_requests_total{{method="POST",{route},status="500"}} 1.0' in metrics
