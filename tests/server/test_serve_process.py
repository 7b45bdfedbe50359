"""``eventlog serve`` as a process: readiness, graceful shutdown, bind safety."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ROOT, ServerFailed, ServerProcess
from tests.support import scaled


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


def test_server_process_helper_reports_a_failed_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_wait = 'soon'\n")
    with pytest.raises(ServerFailed, match="invalid configuration"):
        ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(bad)])
