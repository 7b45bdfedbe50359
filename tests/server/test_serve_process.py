"""``eventlog serve`` as a process: readiness, graceful shutdown, bind safety."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests import forked
from tests.serverproc import ROOT, ServerFailed, ServerProcess
from tests.support import scaled, wait_until_sync


def test_server_becomes_ready_and_exits_0_on_sigterm(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert server.stop() == 0
    assert "Application shutdown complete" in server.output()


def test_server_refuses_non_loopback_host_without_keys(tmp_path: Path) -> None:
    argv = ["serve", "--host", "0.0.0.0", "--db", str(tmp_path / "x.db")]
    result = forked.text(forked.run("server.cli", argv, cwd=ROOT, timeout=scaled(30)))
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0 without API keys" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_serve_refuses_a_database_url_it_cannot_use(tmp_path: Path) -> None:
    argv = ["serve", "--db", "mysql://x/y"]
    result = forked.text(forked.run("server.cli", argv, cwd=tmp_path, timeout=scaled(30)))
    assert result.returncode == 2
    assert "unsupported database URL 'mysql://...'" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "env"),
    [(["--log-level", "loud"], {}), ([], {"EVENTLOG_LOG_LEVEL": "verbose"})],
)
def test_serve_refuses_an_unknown_log_level_as_a_usage_error(
    tmp_path: Path, argv: list[str], env: dict[str, str]
) -> None:
    # It was a traceback (ValueError: Unknown level: 'LOUD') and exit code 1.
    result = forked.text(
        forked.run("server.cli", ["serve", *argv], cwd=tmp_path, env=env, timeout=scaled(30))
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid configuration" in result.stderr
    assert "log_level must be one of debug, info, warning, error, critical" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_server_process_helper_reports_a_failed_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_wait = 'soon'\n")
    with pytest.raises(ServerFailed, match="invalid configuration"):
        ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(bad)])


def test_console_script_serves_on_the_defaults_with_cwd_database(tmp_path: Path) -> None:
    """`eventlog serve` (the installed script) uses ./eventlog.db and 127.0.0.1;
    only the port is moved off 7432 here (EVENTLOG_PORT=0: the kernel picks a free
    one, which the start-up line names) so tests never collide."""
    script = Path(sys.executable).parent / "eventlog"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    env["EVENTLOG_PORT"] = "0"
    err_path = tmp_path / "stderr.log"
    with open(err_path, "wb") as err_file:
        proc = subprocess.Popen(
            [str(script), "serve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    running = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
    try:
        wait_until_sync(
            lambda: running.search(err_path.read_text()) or proc.poll() is not None,
            30,
            what="the start-up line",
        )
        match = running.search(err_path.read_text())
        assert match is not None, f"server exited with {proc.poll()}: {err_path.read_text()}"
        url = f"http://127.0.0.1:{match.group(1)}"
        assert httpx.get(f"{url}/readyz", timeout=scaled(5)).status_code == 200
        r = httpx.post(f"{url}/api/streams/s/events", json={"type": "t"}, timeout=scaled(5))
        assert r.status_code == 201
        assert (tmp_path / "eventlog.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=scaled(20))
    assert proc.returncode == 0


def test_each_request_logs_one_line_with_its_correlation_id(server: ServerProcess) -> None:
    """Request lines are buffered (written every 50 ms); none is lost at exit."""
    url = f"{server.url}/api/streams/logged/events"
    r = httpx.post(url, json={"type": "a"}, headers={"X-Correlation-Id": "req-42"})
    assert r.status_code == 201
    assert r.headers["x-correlation-id"] == "req-42"
    wait_until_sync(lambda: "cid=req-42" in server.output(), 5, what="the first request line")
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
