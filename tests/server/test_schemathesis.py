"""Generated requests against a real server: every answer must agree with ``/openapi.json``.

Schemathesis reads the served document and sends requests built from it, valid
and invalid (examples, boundary values, fuzzing, stateful sequences), with
every check on (``--checks all`` but ``use_after_free``, see the config): no
5xx, status codes, content types and bodies as documented, schema-valid data
accepted, invalid data refused, the ``Allow`` header of a 405, and more; one
seed. ``schemathesis.toml`` beside this file says which operations are left
out and why (the endless SSE stream, and the two routes that would make the
server send requests to generated URLs) and the few rules JSON Schema cannot
state.

Every phase runs once, to its end: the coverage phase (each operation's
boundary and invalid values, about 2,000 requests), then :data:`EXAMPLES`
fuzzed cases per operation and the stateful sequences. The test asserts that
every selected operation was tested. (A ``--max-time`` budget would instead
repeat fuzzing until the budget is spent, which costs a minute and proves no
further operation.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverthread import ServerThread
from tests.support import scaled

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
EXAMPLES = 10  # fuzzed test cases per operation (the coverage phase is not capped)
MAX_SECONDS = 60  # for the whole run, on an unloaded machine


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A fresh server; long-polls end at once (``wait`` is capped at 0.1 s)."""
    env = {"EVENTLOG_MAX_WAIT": "0.1", "EVENTLOG_SYNCHRONOUS": "normal"}
    with ServerThread.start(db=tmp_path / "events.db", env=env) as proc:
        yield proc


@pytest.mark.slow
@pytest.mark.timeout(MAX_SECONDS * 4)
def test_generated_requests_find_no_disagreement_with_the_openapi_document(
    server: ServerThread, tmp_path: Path
) -> None:
    run = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "use_after_free",  # see schemathesis.toml: reads of absent streams are by design
            "--seed",
            "1",
            "--workers",
            "1",
            "--max-examples",
            str(EXAMPLES),
        ],
        cwd=tmp_path,  # its cache and reports stay out of the tree
        capture_output=True,
        text=True,
        timeout=scaled(MAX_SECONDS * 3),
        check=False,
    )
    output = run.stdout + run.stderr
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    operations = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", output)
    print(output[output.find("SUMMARY") :])  # the number of generated requests, with -s
    assert run.returncode == 0, output[-6000:]
    assert counts is not None, output[-6000:]
    assert counts.group(1) == counts.group(2)  # every generated request passed every check
    assert int(counts.group(1)) > 1000
    assert operations is not None, output[-6000:]
    selected, total, tested = map(int, operations.groups())
    assert tested == selected, "an operation was selected but never tested"
    assert selected == total - 5  # all but the five that schemathesis.toml leaves out
    assert "Traceback" not in server.output()
