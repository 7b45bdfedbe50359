"""``source_dirs``: sources made over the API read only under the operator's directories.

A real ``eventlog serve`` whose database lives in ``allowed/`` (the default
``source_dirs``), with real files inside and outside it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import ConfigError, load_config
from server.sources.confine import SourceDirs, default_source_dirs
from server.sources.spec import SourceError
from tests.serverproc import ServerProcess
from tests.support import scaled

SECRET = "root:$6$saltsalt$SECRETHASH:19000:0:99999:7:::"


class Site:
    """The served tree: ``allowed/`` (the database's directory), ``outside/``."""

    def __init__(self, server: ServerProcess, root: Path) -> None:
        self.server = server
        self.allowed = root / "allowed"
        self.outside = root / "outside"
        self.secret = self.outside / "shadow"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("srcdirs")
    (root / "allowed").mkdir()
    (root / "outside").mkdir()
    (root / "outside" / "shadow").write_text(SECRET + "\n")
    (root / "outside" / "conf.ndjson").write_text('{"from": "config"}\n')
    config = root / "allowed" / "eventlog.toml"
    config.write_text(
        '[[sources]]\nname = "declared"\nkind = "ndjson-tail"\n'
        f'path = "{root / "outside" / "conf.ndjson"}"\nstream = "conf"\n'
    )
    db = root / "allowed" / "events.db"
    with ServerProcess.start(db=db, extra_args=["--config", str(config)]) as server:
        yield Site(server, root)


def _until(probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + scaled(10)
    while not (got := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def _events(client: httpx.Client, stream: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/streams/{stream}/events", params={"wait": 0.5})
    if answer.status_code == 404:
        return []
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def _tail(name: str, path: str | Path, **more: str) -> dict[str, str]:
    return {"name": name, "kind": "ndjson-tail", "path": str(path), "stream": name, **more}


def _refused(answer: httpx.Response) -> str:
    assert answer.status_code == 422, answer.text
    error: dict[str, str] = answer.json()["error"]
    assert error["code"] == "invalid_source"
    return error["message"]


def test_a_path_outside_is_refused_directly_via_symlink_and_via_dotdot(site: Site) -> None:
    link = site.allowed / "innocent.ndjson"
    link.symlink_to(site.secret)
    dotdot = f"{site.allowed}/../outside/shadow"
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        for path in (site.secret, link, dotdot, "/etc/shadow"):
            message = _refused(client.post("/api/sources", json=_tail("y", path)))
            assert "outside the directories" in message
            assert "source_dirs" in message
        assert "resolves to" in _refused(client.post("/api/sources", json=_tail("y", link)))
        spec = {"name": "d", "kind": "directory", "path": str(site.allowed), "stream": "d"}
        message = _refused(client.post("/api/sources", json={**spec, "done": str(site.outside)}))
        assert message.startswith("done ")
        for own in (site.server.db, site.allowed / "eventlog.toml"):
            message = _refused(client.post("/api/sources", json=_tail("y", own)))
            assert "server's own files" in message
        assert _refused(client.put("/api/sources/y", json=_tail("y", dotdot)))
        assert client.get("/api/sources/y").status_code == 404
        assert _events(client, "y") == []
        assert _events(client, "y.errors") == []
    assert SECRET not in site.server.output()


def test_a_relative_path_over_the_api_is_refused(site: Site) -> None:
    # `eventlog sources add z --path app.ndjson` was accepted and read the
    # server's working directory, not the caller's: a source with no error
    # that never appended anything (or another file than meant).
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        message = _refused(client.post("/api/sources", json=_tail("rel", "app.ndjson")))
        assert message.startswith("path 'app.ndjson' is relative: give an absolute path")
        spec = {"name": "rd", "kind": "directory", "path": str(site.allowed), "stream": "rd"}
        message = _refused(client.put("/api/sources/rd", json={**spec, "done": "done"}))
        assert message.startswith("done 'done' is relative")
        assert client.get("/api/sources/rel").status_code == 404
        assert client.get("/api/sources/rd").status_code == 404


def test_a_source_inside_runs_and_the_log_omits_bad_lines_text(site: Site) -> None:
    path = site.allowed / "app.ndjson"
    path.write_text('{"n": 1}\nnot json: do-not-log-me\n')
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        assert client.post("/api/sources", json=_tail("app", path)).status_code == 201
        with open(path, "a") as f:
            f.write('{"n": 2}\n')
        events = _until(lambda: len(got := _events(client, "app")) >= 2 and got)
        assert [e["data"] for e in events] == [{"n": 1}, {"n": 2}]
        [parked] = _until(lambda: _events(client, "app.errors"))
        assert parked["data"]["text"] == "not json: do-not-log-me"  # the dead letter keeps it
        # A PUT that moves it outside is refused; the source keeps its file.
        assert _refused(client.put("/api/sources/app", json=_tail("app", site.secret)))
        assert client.get("/api/sources/app").json()["spec"]["path"] == str(path)
    logged = _until(lambda: [x for x in site.server.output().splitlines() if "parked" in x])
    assert logged, site.server.output()
    assert "app.ndjson line 2 (byte 9) to app.errors: not JSON" in logged[0]
    assert "do-not-log-me" not in site.server.output()


def test_a_file_swapped_for_a_symlink_outside_is_not_read(site: Site) -> None:
    path = site.allowed / "swap.ndjson"
    path.write_text('{"n": 1}\n')
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        assert client.post("/api/sources", json=_tail("swap", path)).status_code == 201
        assert _until(lambda: _events(client, "swap"))
        path.unlink()
        path.symlink_to(site.secret)

        def error() -> str | None:
            status: dict[str, str | None] = client.get("/api/sources/swap").json()["status"]
            return status["error"]

        assert "outside the directories" in _until(error)
        assert [e["data"] for e in _events(client, "swap")] == [{"n": 1}]
        assert _events(client, "swap.errors") == []
    assert SECRET not in site.server.output()


def test_a_done_whose_parent_becomes_a_symlink_outside_is_not_created(site: Site) -> None:
    drop, archive = site.allowed / "drop", site.allowed / "archive"
    drop.mkdir()
    archive.mkdir()
    spec = {
        "name": "drop",
        "kind": "directory",
        "path": str(drop),
        "stream": "drop",
        "done": str(archive / "done"),
    }
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        assert client.post("/api/sources", json=spec).status_code == 201
        archive.rename(site.allowed / "archive.old")
        archive.symlink_to(site.outside)
        (drop / "a.json").write_text('{"f": "a"}')

        def error() -> str | None:
            status: dict[str, str | None] = client.get("/api/sources/drop").json()["status"]
            return status["error"]

        message = _until(error)
        assert message.startswith(f"SourceError: done {str(archive / 'done')!r}"), message
        assert "outside the directories" in message
        assert "done" not in os.listdir(site.outside)
        # Not moved. (A pass that began before the swap may have appended it: it
        # lies inside; only the move into done is refused.)
        assert os.listdir(drop) == ["a.json"]
        assert client.delete("/api/sources/drop").status_code == 204


def test_a_config_file_source_outside_still_runs(site: Site) -> None:
    with httpx.Client(base_url=site.server.url, timeout=scaled(10)) as client:
        [event] = _until(lambda: _events(client, "conf"))
        assert event["data"] == {"from": "config"}
        assert client.get("/api/sources/declared").json()["status"]["error"] is None


def test_source_dir_flag_replaces_the_default(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.ndjson").write_text('{"a": 1}\n')
    (tmp_path / "next.ndjson").write_text('{"b": 1}\n')
    flags = ["--source-dir", str(tmp_path / "in"), "--source-dir", str(tmp_path / "other")]
    with ServerProcess.start(db=tmp_path / "events.db") as server:
        with httpx.Client(base_url=server.url, timeout=scaled(10)) as client:
            made = client.post("/api/sources", json=_tail("b", tmp_path / "next.ndjson"))
            assert made.status_code == 201, made.text
            assert _until(lambda: _events(client, "b"))
        server.restart(extra_args=flags)
        with httpx.Client(base_url=server.url, timeout=scaled(10)) as client:
            ok = client.post("/api/sources", json=_tail("a", tmp_path / "in" / "a.ndjson"))
            assert ok.status_code == 201, ok.text
            assert _until(lambda: _events(client, "a"))
            # The database's directory is no longer listed: refused, and the
            # source stored before the restart stops reading there.
            _refused(client.post("/api/sources", json=_tail("c", tmp_path / "next.ndjson")))
            status = _until(lambda: client.get("/api/sources/b").json()["status"]["error"])
            assert "outside the directories" in status
            with open(tmp_path / "next.ndjson", "a") as f:
                f.write('{"b": 2}\n')
            time.sleep(scaled(0.5))
            assert [e["data"] for e in _events(client, "b")] == [{"b": 1}]


def test_source_dirs_setting_layers_and_default(tmp_path: Path) -> None:
    assert load_config().source_dirs is None
    env = {"EVENTLOG_SOURCE_DIRS": '["/srv/in"]'}
    assert load_config(environ=env).source_dirs == ["/srv/in"]
    flagged = load_config(environ=env, flags={"source_dirs": ["/a", "/b"]})
    assert flagged.source_dirs == ["/a", "/b"]
    with pytest.raises(ConfigError, match="EVENTLOG_SOURCE_DIRS"):
        load_config(environ={"EVENTLOG_SOURCE_DIRS": '"/srv/in"'})
    assert default_source_dirs(str(tmp_path / "e.db")) == [str(tmp_path)]
    assert default_source_dirs("postgresql://u@localhost/db") == []
    assert default_source_dirs(":memory:") == []
    os.symlink(tmp_path, tmp_path / "loop")
    dirs = SourceDirs([tmp_path / "loop"])  # the allowed directory itself resolved too
    dirs.check(tmp_path / "x")
    with pytest.raises(SourceError, match=r"\(none\)"):
        SourceDirs([]).check(tmp_path / "x")
    with pytest.raises(SourceError, match="resolves to '/etc/shadow'"):
        dirs.check(f"{tmp_path}/../../../../../../../etc/shadow")
