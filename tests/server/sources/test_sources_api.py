"""``/api/sources`` and ``eventlog sources`` on a real ``eventlog serve`` with a ``[[sources]]``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.cli.conftest import eventlog
from tests.serverproc import ServerProcess
from tests.support import scaled


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """A server whose config file declares the source ``declared`` (a json-file)."""
    root = tmp_path_factory.mktemp("sources")
    config = root / "eventlog.toml"
    config.write_text(
        '[[sources]]\nname = "declared"\nkind = "json-file"\n'
        f'path = "{root / "stats.json"}"\nstream = "stats"\n'
    )
    with ServerProcess.start(db=root / "events.db", extra_args=["--config", str(config)]) as s:
        yield s, root


def _wait_for_events(client: httpx.Client, stream: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + scaled(10)
    while True:
        events: list[dict[str, object]] = client.get(
            f"/api/streams/{stream}/events", params={"wait": 1}
        ).json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events


def test_declared_source_runs_and_cannot_be_changed(served: tuple[ServerProcess, Path]) -> None:
    server, root = served
    (root / "stats.json").write_text('{"cpu": 0.25}')
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as client:
        [event] = _wait_for_events(client, "stats", 1)
        assert event["data"] == {"cpu": 0.25}
        view = client.get("/api/sources/declared").json()
        assert view["origin"] == "config"
        assert view["status"]["running"] is True
        assert view["status"]["appended"] == 1
        for answer in (
            client.delete("/api/sources/declared"),
            client.put(
                "/api/sources/declared",
                json={"name": "declared", "kind": "json-file", "path": "/x", "stream": "s"},
            ),
        ):
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == "config_source"


def test_create_replace_delete_over_http(served: tuple[ServerProcess, Path]) -> None:
    server, root = served
    log_file = root / "app.ndjson"
    log_file.write_text('{"n": 1}\nnot json\n')
    spec = {"name": "app", "kind": "ndjson-tail", "path": str(log_file), "stream": "app"}
    with httpx.Client(base_url=server.url, timeout=scaled(10)) as client:
        created = client.post("/api/sources", json=spec)
        assert created.status_code == 201, created.text
        assert client.post("/api/sources", json=spec).status_code == 409
        assert [e["data"] for e in _wait_for_events(client, "app", 1)] == [{"n": 1}]
        [parked] = _wait_for_events(client, "app.errors", 1)
        assert parked["data"]["line"] == 2  # type: ignore[index]
        replaced = client.put("/api/sources/app", json={**spec, "type": "app.event"})
        assert replaced.status_code == 200
        with open(log_file, "a") as f:
            f.write('{"n": 2}\n')
        events = _wait_for_events(client, "app", 2)
        assert [(e["data"], e["type"]) for e in events] == [
            ({"n": 1}, "app.line"),
            ({"n": 2}, "app.event"),  # the replaced source resumed from its position
        ]
        names = [s["spec"]["name"] for s in client.get("/api/sources").json()["sources"]]
        assert names == ["declared", "app"]
        assert client.delete("/api/sources/app").status_code == 204
        assert client.get("/api/sources/app").status_code == 404
        assert client.delete("/api/sources/app").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"name": "x", "kind": "nope", "path": "/x", "stream": "s"}', 422),
        (b'{"name": "x", "kind": "json-file", "path": "/x", "stream": "no/pe"}', 422),
        (b'{"name": "x", "kind": "json-file", "stream": "s"}', 422),
        (b"[]", 422),
        # No file has a NUL in its name: refused, not retried forever as "embedded null byte".
        (b'{"name": "x", "kind": "json-file", "path": "/tmp/\\u0000x", "stream": "s"}', 422),
        (
            b'{"name": "x", "kind": "directory", "path": "/d", "stream": "s", "done": "\\u0000"}',
            422,
        ),
    ],
)
def test_bad_source_specs_are_4xx(
    served: tuple[ServerProcess, Path], body: bytes, status: int
) -> None:
    server, _ = served
    answer = httpx.post(f"{server.url}/api/sources", content=body, timeout=scaled(10))
    assert answer.status_code == status
    assert answer.json()["error"]["code"]


def test_cli_adds_lists_and_deletes(served: tuple[ServerProcess, Path]) -> None:
    server, root = served
    (root / "drop").mkdir()
    url = ["--url", server.url]
    added = eventlog(
        "sources", "add", "drop", "--kind", "directory", "--path", str(root / "drop"),
        "--stream", "dropped", "--done", str(root / "done"), *url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = eventlog("sources", "list", *url)
    assert "drop" in listed.stdout.split()
    assert "directory" in listed.stdout.split()
    bad = eventlog("sources", "add", "x", "--kind", "nope", "--path", "/x", "--stream", "s", *url)
    assert bad.returncode == 1
    assert "unknown kind" in bad.stderr
    assert eventlog("sources", "delete", "drop", *url).returncode == 0
    assert eventlog("sources", "delete", "drop", *url).returncode == 1


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('name = "x"\nkind = "csv"\npath = "/x"\nstream = "s"', "unknown kind 'csv'"),
        ('name = "x"\nkind = "json-file"\nstream = "s"', "path"),
        ('name = "x"\nkind = "json-file"\npath = "/x"\nstream = "s/t"', "stream"),
    ],
)
def test_serve_refuses_a_bad_source_in_the_config(tmp_path: Path, table: str, says: str) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text(f"[[sources]]\n{table}\n")
    done = eventlog("serve", "--db", str(tmp_path / "e.db"), "--config", str(config), "--port", "1")
    assert done.returncode == 2
    assert "sources[0]" in done.stderr
    assert says in done.stderr
