"""One rule for repeated query parameters on every route: 400 naming the parameter;
the append and read routes also refuse a parameter they do not take."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from eventlog.errors import InvalidParameter
from server.api.params import refuse_repeats, refuse_unknown
from server.errors import status_for
from tests.serverproc import ServerProcess

ROUTES = [
    ("GET", "/api/streams/q/events?from=0&limit=5&from=1", "from"),
    ("GET", "/api/streams/q/events?wait=0&wait=1", "wait"),
    ("POST", "/api/streams/q/events?expected_offset=1&expected_offset=1", "expected_offset"),
    ("GET", "/api/streams?x=1&x=2", "x"),
    ("GET", "/api/streams/q?a=&a=", "a"),
    ("GET", "/api/streams/q/sse?from=0&from=end", "from"),
    ("GET", "/api/consumers?limit=1&limit=1", "limit"),
    ("GET", "/api/webhooks/nope/deliveries?limit=1&limit=2", "limit"),
    ("GET", "/api/notifications/nope/deliveries?status=failed&status=pending", "status"),
    ("POST", "/api/webhooks/nope/replay?dry_run=1&dry_run=0", "dry_run"),
    ("GET", "/healthz?probe=1&probe=2", "probe"),
    ("GET", "/openapi.json?v=1&v=2", "v"),
]


def test_refuse_repeats_names_the_first_repeated_parameter() -> None:
    refuse_repeats(b"")
    refuse_repeats(b"from=0&limit=5&wait=1")
    refuse_repeats(b"a=1;a=2")  # ';' separates nothing: one parameter named a
    with pytest.raises(InvalidParameter) as exc:
        refuse_repeats(b"limit=1&from=0&from=0&limit=2")
    assert (status_for(exc.value), exc.value.code) == (400, "invalid_parameter")
    assert str(exc.value) == "query parameter 'from' given twice"
    with pytest.raises(InvalidParameter, match="'types'"):
        refuse_repeats(b"types=a&types")


@pytest.mark.parametrize(("method", "target", "name"), ROUTES)
def test_a_repeated_query_parameter_is_refused_on_every_route(
    shared_server: ServerProcess, method: str, target: str, name: str
) -> None:
    r = httpx.request(
        method, shared_server.url + target, json={"type": "t"} if method == "POST" else None
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "invalid_parameter",
        "message": f"query parameter {name!r} given twice",
    }


async def _refused_upgrade(url: str) -> bytes:
    """The body of the 400 a WebSocket upgrade to ``url`` is refused with."""
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url):
            pass
    assert exc.value.response.status_code == 400
    return bytes(exc.value.response.body or b"")


async def test_a_repeated_query_parameter_is_refused_before_a_websocket_upgrade(
    shared_server: ServerProcess,
) -> None:
    body = await _refused_upgrade(f"{shared_server.ws_url}/api/streams/q/firehose?batch=1&batch=2")
    assert b"query parameter 'batch' given twice" in body


def test_refuse_unknown_names_the_parameter_and_what_the_route_takes() -> None:
    refuse_unknown({}, ("from", "limit"))
    refuse_unknown({"limit": "5"}, ("from", "limit"))
    with pytest.raises(InvalidParameter) as exc:
        refuse_unknown({"from": "0", "frm": "0"}, ("from", "limit"))
    assert (status_for(exc.value), exc.value.code) == (400, "invalid_parameter")
    assert str(exc.value) == "unknown query parameter 'frm': this route takes from, limit"


def test_a_misspelt_expected_offset_appends_nothing(shared_server: ServerProcess) -> None:
    url = shared_server.url + "/api/streams/typo-append/events"
    assert httpx.post(url, json={"type": "t"}).status_code == 201
    r = httpx.post(url, params={"expected_ofset": "0"}, json={"type": "t"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "code": "invalid_parameter",
        "message": "unknown query parameter 'expected_ofset': "
        "this route takes expected_offset, deliver_at, delay",
    }
    r = httpx.post(url, params={"expected_offset": "1"}, json={"type": "t"})
    assert r.json()["offsets"] == [1]  # the refused append wrote nothing


def test_a_read_with_a_misspelt_parameter_is_refused(shared_server: ServerProcess) -> None:
    url = shared_server.url + "/api/streams/typo-read/events"
    r = httpx.get(url, params={"frm": "5"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (
        "unknown query parameter 'frm': this route takes from, limit, wait"
    )
    assert httpx.get(url, params={"from": "0", "limit": "1", "wait": "0"}).status_code == 200


def test_a_misspelt_firehose_filter_is_refused(shared_server: ServerProcess) -> None:
    r = httpx.get(shared_server.url + "/api/streams/events/sse", params={"tpyes": "order.*"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == (
        "unknown query parameter 'tpyes': this route takes from, types, key, batch"
    )


async def test_a_misspelt_firehose_filter_is_refused_before_a_websocket_upgrade(
    shared_server: ServerProcess,
) -> None:
    body = await _refused_upgrade(f"{shared_server.ws_url}/api/events/firehose?from=0&tpyes=o.*")
    assert b"unknown query parameter 'tpyes'" in body
    async with connect(f"{shared_server.ws_url}/api/events/firehose?from=0&access_token=x"):
        pass  # no keys configured: the token is taken and not needed
