"""Consumers declared in the server's config file run inside `eventlog serve`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.serverproc import ServerProcess
from tests.support import scaled

CONFIG = """
[[consumers]]
name = "audit"
kind = "log"
stream = "orders"
types = ["order.*"]
options = { level = "warning" }
"""


def test_declared_log_consumer_runs_and_commits_in_the_server(tmp_path: Path) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text(CONFIG)
    with ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(config)]) as server:
        for i in range(3):
            r = httpx.post(
                f"{server.url}/api/streams/orders/events",
                json={"type": "order.created", "data": {"n": i}},
            )
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + scaled(10)
        offset = None
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/api/consumers/audit").json()
            offset = next(
                (s["offset"] for s in body.get("streams", []) if s["stream"] == "orders"), None
            )
            if offset == 3:
                break
            time.sleep(0.05)
        assert offset == 3, body
        assert server.stop() == 0
        assert "orders@2 order.created" in server.output()


def test_unknown_consumer_kind_fails_start_up_clearly(tmp_path: Path) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text('[[consumers]]\nname = "x"\nkind = "nope"\nstream = "s"\n')
    import pytest

    from tests.serverproc import ServerFailed

    with pytest.raises(ServerFailed, match="unknown kind 'nope'") as failed:
        ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(config)])
    output = str(failed.value)
    assert output.startswith("server exited with 3:")
    # One line says what is wrong; the traceback is for --log-level debug.
    assert "startup failed: ValueError: consumer 'x': unknown kind 'nope' (known: log)" in output
    assert "Traceback" not in output


def test_a_kind_module_the_server_cannot_import_says_how_to_make_it_importable(
    tmp_path: Path,
) -> None:
    (tmp_path / "digest.py").write_text(
        "def make(log, options):\n    async def handle(events):\n        pass\n    return handle\n"
    )
    config = tmp_path / "eventlog.toml"
    config.write_text('[[consumers]]\nname = "digest"\nkind = "digest:make"\nstream = "orders"\n')
    import pytest

    from tests.serverproc import ServerFailed

    args = ["--config", str(config)]
    with pytest.raises(ServerFailed, match="No module named 'digest'") as failed:
        ServerProcess.start(db=tmp_path / "e.db", extra_args=args)
    assert "start the server with PYTHONPATH set to its directory" in str(failed.value)
