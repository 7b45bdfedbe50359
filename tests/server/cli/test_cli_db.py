"""The real ``eventlog`` CLI as a subprocess on a database file (``--db``), no server."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import msgspec
import pytest

from consumers.shared import SharedConsumers, SharedSpec
from eventlog import EventLog, Retention
from server.cli import main
from tests.server.cli.conftest import (
    EVENTLOG,
    cli_env,
    default_sigint,
    eventlog,
    lines_json,
    stop_with,
)
from tests.support import scaled


def test_append_argument_and_ndjson_stdin_then_tail_from_beginning(db: Path) -> None:
    first = eventlog("append", "--db", str(db), "orders", '{"type":"order.created","data":{"n":1}}')
    assert (first.returncode, first.stdout, first.stderr) == (0, "0\n", "")
    ndjson = (
        '{"type":"order.paid","data":{"n": 2,  "x":[1, 2]},"key":"c-1","id":"pay-2"}\n'
        "\n"
        '{"type":"order.shipped","headers":{"carrier":"ups"}}\n'
    )
    more = eventlog("append", "--db", str(db), "orders", input=ndjson)
    assert (more.returncode, more.stdout) == (0, "1\n2\n")

    tail = eventlog("tail", "--db", str(db), "orders", "--from", "beginning")
    assert tail.returncode == 0, tail.stderr
    events = lines_json(tail.stdout)
    assert [e["offset"] for e in events] == [0, 1, 2]
    assert [e["type"] for e in events] == ["order.created", "order.paid", "order.shipped"]
    assert events[1]["key"] == "c-1"
    assert events[1]["id"] == "pay-2"
    assert events[2]["headers"] == {"carrier": "ups"}
    assert events[2]["data"] is None
    # data is printed exactly as the producer wrote it, one compact object per line
    assert '"data":{"n": 2,  "x":[1, 2]}}' in tail.stdout.splitlines()[1]


def test_payload_mode_with_type_key_and_id(db: Path) -> None:
    args = ["append", "--db", str(db), "pay", "--type", "paid", "--key", "k1"]
    once = eventlog(*args, "--id", "p-1", '{"amount": 5}')
    assert once.stdout == "0\n"
    lines = eventlog(*args, input='{"amount": 6}\n[1,2]\n"text"\n')
    assert lines.stdout == "1\n2\n3\n"
    events = lines_json(eventlog("tail", "--db", str(db), "pay", "--from", "0").stdout)
    assert [e["data"] for e in events] == [{"amount": 5}, {"amount": 6}, [1, 2], "text"]
    assert {e["type"] for e in events} == {"paid"}
    assert {e["key"] for e in events} == {"k1"}


def test_tail_from_positions(db: Path) -> None:
    eventlog("append", "--db", str(db), "s", "-t", "n", input="".join(f"{i}\n" for i in range(15)))

    def data(*args: str) -> list[object]:
        result = eventlog("tail", "--db", str(db), "s", *args)
        assert result.returncode == 0, result.stderr
        return [e["data"] for e in lines_json(result.stdout)]

    # (every --from form is resolved by parse_from, unit-tested in test_cli_events.py)
    assert data() == list(range(5, 15))  # default: the last 10, like tail(1)
    assert data("--from", "-3") == [12, 13, 14]


def test_tail_follow_prints_a_new_append_and_stops_cleanly_on_sigint_and_sigterm(
    db: Path,
) -> None:
    eventlog("append", "--db", str(db), "live", '{"type":"old"}')
    # From the head by number, not `--from end`: nothing outside the tail process
    # shows when it has read the head, and an append before that would be skipped.
    # (`-f --from end` is covered against a server, where the parked poll shows.)
    for head, sig in enumerate((signal.SIGINT, signal.SIGTERM), start=1):
        with subprocess.Popen(
            [EVENTLOG, "tail", "--db", str(db), "live", "-f", "--from", str(head)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            preexec_fn=default_sigint,
        ) as proc:
            try:
                new = eventlog("append", "--db", str(db), "live", f'{{"type":"new-{sig.name}"}}')
                assert new.returncode == 0, new.stderr
                assert proc.stdout is not None
                assert proc.stderr is not None
                line = proc.stdout.readline()  # blocks until tail prints it
                assert msgspec.json.decode(line)["type"] == f"new-{sig.name}"
                assert stop_with(proc, sig, scaled(15)) == 0
                assert proc.stderr.read() == b""
            finally:
                if proc.poll() is None:
                    proc.kill()


def test_tail_into_head_exits_cleanly(db: Path, tmp_path: Path) -> None:
    # Far more than a pipe buffer, so tail really writes into a closed pipe.
    body = "".join(f'{{"type":"t","data":"{"x" * 200}","id":"e{i}"}}\n' for i in range(3000))
    assert eventlog("import", "--db", str(db), "big", input=body).returncode == 0
    shell = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'"{EVENTLOG}" tail --db "{db}" big --from 0 | head -n 1'],
        capture_output=True,
        env=cli_env(),
        timeout=scaled(30),
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stderr == b""
    assert msgspec.json.decode(shell.stdout)["id"] == "e0"


async def test_streams_and_consumers_tables_and_json(db: Path) -> None:
    eventlog("append", "--db", str(db), "orders", "-t", "x", input="1\n2\n3\n4\n")
    eventlog("append", "--db", str(db), "audit.log", "-t", "y", "{}")
    async with EventLog.open(db) as log:
        consumer = log.consumer("mailer", "orders")
        await consumer.poll(3)
        await consumer.commit()
        await log.set_retention("audit.log", Retention(max_age=7 * 86400))

    streams = eventlog("streams", "--db", str(db))
    assert streams.returncode == 0, streams.stderr
    rows = [line.split() for line in streams.stdout.splitlines()]
    assert rows[0] == ["STREAM", "FIRST", "NEXT", "EVENTS", "SIZE", "LAST", "APPEND", "RETENTION"]
    assert rows[2][:4] == ["audit.log", "0", "1", "1"]
    assert rows[2][-2:] == ["age", "7d"]
    assert rows[3][:6] == ["orders", "0", "4", "4", "4", "bytes"]
    # aligned: a left-justified column starts at the same place on every row
    header, _, *body = streams.stdout.splitlines()
    assert [line.index(" 20") + 1 for line in body] == [header.index("LAST APPEND")] * 2
    assert [line.index("age") for line in body[:1]] == [header.index("RETENTION")]

    as_json = msgspec.json.decode(eventlog("streams", "--db", str(db), "--json").stdout)
    assert [(s["name"], s["next_offset"]) for s in as_json] == [("audit.log", 1), ("orders", 4)]

    consumers = eventlog("consumers", "--db", str(db))
    assert consumers.returncode == 0, consumers.stderr
    rows = [line.split() for line in consumers.stdout.splitlines()]
    assert rows[0] == ["CONSUMER", "STREAM", "OFFSET", "LAG", "UPDATED"]
    assert rows[2][:4] == ["mailer", "orders", "3", "1"]
    [row] = msgspec.json.decode(eventlog("consumers", "--db", str(db), "--json").stdout)
    assert (row["name"], row["stream"], row["offset"], row["lag"]) == ("mailer", "orders", 3, 1)


async def test_consumers_show_of_a_shared_consumer_gives_its_claim_state(db: Path) -> None:
    eventlog("append", "--db", str(db), "mail", "-t", "x", input="1\n2\n3\n")
    async with EventLog.open(db) as log:
        shared = SharedConsumers(log)
        await shared.open()
        mailer = await shared.declare("mailer", SharedSpec(stream="mail", max_deliver=2))
        assert [c.offset for c in await mailer.claim("w1", 1, 0)] == [0]
        plain = log.consumer("plain", "mail")
        await plain.poll(1)
        await plain.commit()
        shared.close()

    show = eventlog("consumers", "show", "mailer", "--db", str(db))
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert lines[1] == "state     shared: workers claim its events (ack_wait 30 s, max_deliver 2)"
    assert lines[2].startswith("claims    2 pending, 1 claimed; ack floor 0 of head 3; oldest")
    detail = msgspec.json.decode(
        eventlog("consumers", "show", "mailer", "--db", str(db), "--json").stdout
    )
    assert (detail["shared"]["pending"], detail["shared"]["claimed"]) == (2, 1)
    plain_detail = eventlog("consumers", "show", "plain", "--db", str(db), "--json").stdout
    assert msgspec.json.decode(plain_detail)["shared"] is None


def test_export_import_round_trip_keeps_ids_and_data_and_reimport_is_idempotent(
    db: Path, tmp_path: Path
) -> None:
    source = (
        '{"type":"a","data":{"z": 1, "a": [true, null]},"key":"k","headers":{"h":"1"}}\n'
        + "".join(f'{{"type":"b","data":{i}}}\n' for i in range(2500))
    )
    assert eventlog("append", "--db", str(db), "src", input=source).returncode == 0
    exported = eventlog("export", "--db", str(db), "src")
    assert exported.returncode == 0
    assert exported.stderr == "eventlog: exported 2501 events from src\n"
    dump = tmp_path / "src.ndjson"
    dump.write_text(exported.stdout)

    target = tmp_path / "other.db"
    for attempt, detail in ((1, "2501 new, 0 already present"), (2, "0 new, 2501 already present")):
        with open(dump, "rb") as f:
            imported = subprocess.run(
                [EVENTLOG, "import", "--db", str(target), "dst", "--batch-size", "700"],
                stdin=f,
                capture_output=True,
                env=cli_env(),
                timeout=scaled(60),
                check=False,
            )
        assert imported.returncode == 0, (attempt, imported.stderr)
        assert imported.stderr.decode() == f"eventlog: imported 2501 events into dst ({detail})\n"

    copied = lines_json(eventlog("export", "--db", str(target), "dst").stdout)
    original = lines_json(exported.stdout)
    assert len(copied) == 2501
    keep = ("id", "type", "key", "headers", "data")
    assert [{k: e[k] for k in keep} for e in copied] == [{k: e[k] for k in keep} for e in original]
    assert {e["stream"] for e in copied} == {"dst"}
    # the payload bytes themselves survive, not just their meaning
    assert (
        '"data":{"z": 1, "a": [true, null]}'
        in eventlog("tail", "--db", str(target), "dst", "--from", "0").stdout.splitlines()[0]
    )


USAGE_ERRORS = [
    (["append", "--db", "{db}", "bad name", "{{}}"], "invalid name 'bad name'"),
    (["append", "--db", "{db}", "s", "{{oops"], "JSON argument: not valid JSON"),
    (["append", "--db", "{db}", "s", '{{"data":1}}'], "missing required field `type`"),
    (["append", "--db", "{db}", "s", "--id", "x"], "--id works with a JSON argument only"),
    (["tail", "--db", "{db}", "s", "--from", "soon"], "--from must be an offset"),
    (["tail", "--db", "{missing}", "s"], "no database file at"),
    (["streams", "--db", "{db}", "--url", "http://127.0.0.1:1"], "not allowed with argument"),
    (["import", "--db", "{db}", "s", "--batch-size", "0"], "--batch-size must be between"),
    (["streams", "--url", "ftp://x"], "--url must start with http://"),
    (["export", "--db", "{db}", "-"], "invalid name '-'"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS)
def test_usage_errors_exit_2_with_a_clear_message(
    argv: list[str], message: str, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the same main() the console script runs): these never reach a server.
    missing = tmp_path / "nope.db"
    args = [a.format(db=db, missing=missing) for a in argv]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert message in captured.err
    assert captured.out == ""
    assert not missing.exists()


def test_usage_error_from_the_console_script_has_no_traceback(db: Path) -> None:
    result = eventlog("append", "--db", str(db), "s", "{oops")
    assert result.returncode == 2
    assert result.stderr.startswith("eventlog: error: JSON argument: not valid JSON")
    assert "Traceback" not in result.stderr
    assert not db.exists()


def test_bad_stdin_line_exits_2_naming_the_line_and_appends_nothing(db: Path) -> None:
    result = eventlog("append", "--db", str(db), "s", input='{"type":"t"}\n{"type":\n')
    assert result.returncode == 2
    assert "stdin line 2: not valid JSON" in result.stderr
    assert eventlog("streams", "--db", str(db), "--json").stdout in ("[]\n", "")
    result = eventlog("import", "--db", str(db), "s", input='{"type":"t"}\n{"tipe":"t"}\n')
    assert result.returncode == 2
    assert "stdin line 2: not an event object" in result.stderr
    not_utf8 = b'{"type":"t","data":"\xc3\xa9"}\n{"type":"t","data":"\xff"}\n'
    result = eventlog("import", "--db", str(db), "s", input=not_utf8)
    assert result.returncode == 2
    assert "stdin line 2: not valid UTF-8 (byte 20)" in result.stderr
    assert eventlog("streams", "--db", str(db), "--json").stdout in ("[]\n", "")


def test_log_refusal_exits_1(db: Path) -> None:
    eventlog("append", "--db", str(db), "s", '{"type":"t"}')
    too_big = '{"type":"t","data":"' + "x" * (1 << 20) + '"}'
    result = eventlog("append", "--db", str(db), "s", input=too_big + "\n")
    assert result.returncode == 1
    assert "over the limit" in result.stderr
    assert "(event_too_large)" in result.stderr
    missing = eventlog("tail", "--db", str(db), "never-written")
    assert missing.returncode == 1
    assert "stream 'never-written' does not exist" in missing.stderr
    assert eventlog("export", "--db", str(db), "never-written").returncode == 1


def test_progress_bar_is_drawn_only_on_a_terminal(db: Path, tmp_path: Path) -> None:
    dump = tmp_path / "in.ndjson"
    dump.write_text("".join(f'{{"type":"t","id":"i{i}"}}\n' for i in range(50)))
    primary, secondary = os.openpty()
    try:
        with open(dump, "rb") as f:
            proc = subprocess.run(
                [EVENTLOG, "import", "--db", str(db), "s"],
                stdin=f,
                stdout=subprocess.PIPE,
                stderr=secondary,
                env=cli_env({"COLUMNS": "100", "TERM": "xterm"}),
                timeout=scaled(30),
                check=False,
            )
        os.close(secondary)
        secondary = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode == 0
    assert b"import s" in drawn
    assert b"100%" in drawn
    assert b"\xe2\x94\x81" in drawn
    plain = eventlog("import", "--db", str(db), "s", input=dump.read_text())
    assert plain.stderr == "eventlog: imported 50 events into s (0 new, 50 already present)\n"


def appending(db: Path, stream: str) -> subprocess.Popen[bytes]:
    """``eventlog append`` of type ``n`` events into ``stream``, every pipe open."""
    return subprocess.Popen(
        [EVENTLOG, "append", "--db", str(db), stream, "--type", "n"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        preexec_fn=default_sigint,
    )


def test_append_from_a_slow_pipe_appends_each_line_as_it_arrives(db: Path) -> None:
    with appending(db, "slow") as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            proc.stdin.write(b"1\n")
            proc.stdin.flush()
            # The offset comes back while stdin is still open: no waiting for EOF.
            assert proc.stdout.readline() == b"0\n"
            proc.stdin.write(b"2\n")
            proc.stdin.close()
            assert proc.stdout.read() == b"1\n"
            assert proc.wait(scaled(15)) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_append_waiting_on_an_idle_pipe_stops_on_one_sigint_or_sigterm(db: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with appending(db, f"idle-{sig.name}") as proc:
            assert proc.stdin is not None
            assert proc.stdout is not None
            assert proc.stderr is not None
            try:
                proc.stdin.write(b"1\n")
                proc.stdin.flush()
                assert proc.stdout.readline() == b"0\n"  # now it waits on the open pipe
                assert stop_with(proc, sig, scaled(15)) == 130
                assert b"Traceback" not in proc.stderr.read()
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdin.close()
