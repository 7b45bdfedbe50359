"""``eventlog serve`` as a process: readiness, graceful shutdown, bind safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ROOT, ServerFailed, ServerProcess
from tests.support import free_port, scaled


def test_server_becomes_ready_and_exits_0_on_sigterm(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert server.stop() == 0
    assert "Application shutdown complete" in server.output()


def test_server_refuses_non_loopback_host_without_keys(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--db",
            str(tmp_path / "x.db"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0 without API keys" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_serve_refuses_a_database_url_it_cannot_use(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--db", "mysql://x/y"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 2
    assert "unsupported database URL 'mysql://...'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_server_process_helper_reports_a_failed_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_wait = 'soon'\n")
    with pytest.raises(ServerFailed, match="invalid configuration"):
        ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(bad)])


def test_console_script_serves_on_the_defaults_with_cwd_database(tmp_path: Path) -> None:
    """`eventlog serve` (the installed script) uses ./eventlog.db and 127.0.0.1;
    only the port is moved off 7432 here (EVENTLOG_PORT) so tests never collide."""
    port = free_port()
    script = Path(sys.executable).parent / "eventlog"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    env["EVENTLOG_PORT"] = str(port)
    proc = subprocess.Popen(
        [str(script), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + scaled(30)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "server exited"
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.05)
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/streams/s/events", json={"type": "t"}, timeout=scaled(5)
        )
        assert r.status_code == 201
        assert (tmp_path / "eventlog.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=scaled(20))
    assert proc.returncode == 0
    assert f"Uvicorn running on http://127.0.0.1:{port}" in err


def test_each_request_logs_one_line_with_its_correlation_id(server: ServerProcess) -> None:
    """Request lines are buffered (written every 50 ms); none is lost at exit."""
    url = f"{server.url}/api/streams/logged/events"
    r = httpx.post(url, json={"type": "a"}, headers={"X-Correlation-Id": "req-42"})
    assert r.status_code == 201
    assert r.headers["x-correlation-id"] == "req-42"
    deadline = time.monotonic() + scaled(5)
    while "cid=req-42" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    httpx.get(f"{server.url}/api/streams/logged", headers={"X-Correlation-Id": "req-43"})
    assert server.stop() == 0  # the second line is flushed on exit, if not before
    lines = server.output().splitlines()
    first = [line for line in lines if "cid=req-42" in line]
    second = [line for line in lines if "cid=req-43" in line]
    assert len(first) == 1
    assert len(second) == 1
    assert " method=POST " in first[0]
    assert " status=201 " in first[0]
    assert " route=/api/streams/{stream}/events " in first[0]
    assert " method=GET " in second[0]
    assert " status=200 " in second[0]
