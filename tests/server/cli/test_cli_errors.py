"""Every client command reports errors the same way and ends quietly when its reader goes away.

The event commands (``append``, ``tail``, ``streams``, ``consumers``) and the
endpoint commands (``webhooks``, ``notifications``, ``deliveries``) have their
own HTTP code; these tests hold both to one format and one set of exit codes.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.server.cli.conftest import EVENTLOG, cli_env, eventlog
from tests.serverproc import ServerProcess
from tests.support import scaled

SERVER_ERROR = re.compile(r"^eventlog: error: .+ \([a-z_]+, HTTP \d{3}\)$")
UNREACHABLE = re.compile(
    r"^eventlog: error: cannot reach the server at http://127\.0\.0\.1:9: .+ "
    r"\(is `eventlog serve` running\? set --url or EVENTLOG_URL\)$"
)


@pytest.mark.parametrize(
    "command",
    [
        ["consumers", "show", "nosuch"],
        ["webhooks", "show", "nosuch"],
        ["notifications", "show", "nosuch"],
        ["deliveries", "list", "nosuch"],
    ],
)
def test_a_server_error_is_one_line_with_message_code_and_status(
    server: ServerProcess, command: list[str]
) -> None:
    result = eventlog(*command, "--url", server.url)
    assert result.returncode == 1
    assert SERVER_ERROR.match(result.stderr.strip()), result.stderr
    assert "HTTP 404" in result.stderr


@pytest.mark.parametrize(
    "command", [["streams"], ["consumers"], ["webhooks", "list"], ["notifications", "list"]]
)
def test_an_unreachable_server_is_reported_alike_by_every_command(command: list[str]) -> None:
    result = eventlog(*command, "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert UNREACHABLE.match(result.stderr.strip()), result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["streams", "--json"],
        ["webhooks", "list", "--json"],
        ["webhooks", "list"],
        ["notifications", "list", "--json"],
    ],
)
def test_a_reader_that_went_away_ends_the_command_quietly_with_exit_0(
    server: ServerProcess, command: list[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte (like `| head -c 10`)
    try:
        proc = subprocess.run(
            [EVENTLOG, *command, "--url", server.url],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=cli_env(),
            timeout=scaled(30),
            check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr.decode()) == (0, "")


def test_a_usage_error_found_after_parsing_exits_2(server: ServerProcess) -> None:
    result = eventlog("webhooks", "create", "http://127.0.0.1/", "--header", "bad")
    assert result.returncode == 2
    assert result.stderr.strip() == "eventlog: error: --header wants NAME:VALUE, got 'bad'"
