"""The real ``eventlog`` CLI as a subprocess against a real ``eventlog serve`` subprocess."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import msgspec

from eventlog import EventLog, Retention
from server.auth import hash_key
from tests.server.cli.conftest import (
    EVENTLOG,
    cli_env,
    default_sigint,
    eventlog,
    lines_json,
    stop_with,
)
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until_sync


def test_append_argument_and_ndjson_stdin_then_tail_from_beginning(server: ServerThread) -> None:
    url = ["--url", server.url]
    first = eventlog("append", *url, "h-orders", '{"type":"order.created","data":{"n":1}}')
    assert (first.returncode, first.stdout, first.stderr) == (0, "0\n", "")
    ndjson = '{"type":"order.paid","data":{"n": 2,  "x":[1]},"id":"pay-2"}\n\n[1, 2]\n'
    bad_mix = eventlog("append", *url, "h-orders", input=ndjson)
    assert bad_mix.returncode == 2  # "[1, 2]" is not an event object without --type
    assert "stdin line 3: not an event object" in bad_mix.stderr
    more = eventlog("append", *url, "h-orders", input=ndjson.replace("[1, 2]\n", ""))
    assert (more.returncode, more.stdout) == (0, "1\n")
    payloads = eventlog("append", *url, "h-orders", "-t", "note", "-k", "k9", input="[1, 2]\n7\n")
    assert (payloads.returncode, payloads.stdout) == (0, "2\n3\n")
    # the same --id again is an idempotent retry: same offset, nothing written
    for _ in range(2):
        retry = eventlog("append", *url, "h-orders", "-t", "x", "--id", "once", "{}")
        assert retry.stdout == "4\n"

    tail = eventlog("tail", *url, "h-orders", "--from", "beginning")
    assert tail.returncode == 0, tail.stderr
    events = lines_json(tail.stdout)
    assert [e["offset"] for e in events] == [0, 1, 2, 3, 4]
    assert [e["type"] for e in events] == ["order.created", "order.paid", "note", "note", "x"]
    assert [e["data"] for e in events[2:4]] == [[1, 2], 7]
    assert {e["key"] for e in events[2:4]} == {"k9"}
    assert events[1]["id"] == "pay-2"
    assert '"data":{"n": 2,  "x":[1]}}' in tail.stdout.splitlines()[1]


def test_tail_follow_long_polls_and_prints_a_new_append(server: ServerThread) -> None:
    eventlog("append", "--url", server.url, "h-live", '{"type":"old"}')
    with subprocess.Popen(
        [EVENTLOG, "tail", "h-live", "-f", "--from", "end"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env({"EVENTLOG_URL": server.url}),
        preexec_fn=default_sigint,
    ) as proc:
        try:
            wait_until_sync(lambda: server.log.heads.parked("h-live") > 0, what="tail parked")
            appended = eventlog("append", "--url", server.url, "h-live", '{"type":"new"}')
            assert appended.stdout == "1\n"
            assert proc.stdout is not None
            assert proc.stderr is not None
            event = msgspec.json.decode(proc.stdout.readline())
            assert (event["offset"], event["type"]) == (1, "new")
            assert stop_with(proc, signal.SIGINT, scaled(15)) == 0
            assert proc.stderr.read() == b""
        finally:
            if proc.poll() is None:
                proc.kill()


def test_tail_into_head_exits_cleanly(server: ServerThread) -> None:
    body = "".join(f'{{"type":"t","data":"{"y" * 200}"}}\n' for i in range(3000))
    assert eventlog("import", "--url", server.url, "h-big", input=body).returncode == 0
    shell = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'"{EVENTLOG}" tail h-big --from 0 | head -n 1'],
        capture_output=True,
        env=cli_env({"EVENTLOG_URL": server.url}),
        timeout=scaled(30),
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stderr == b""
    assert msgspec.json.decode(shell.stdout)["offset"] == 0


def test_streams_and_consumers_tables_and_json(server: ServerThread) -> None:
    eventlog("append", "--url", server.url, "h-table", "-t", "x", input="1\n2\n3\n4\n5\n")
    seek = httpx.put(
        f"{server.url}/api/consumers/h-mailer", json={"stream": "h-table", "position": 2}
    )
    assert seek.status_code == 200, seek.text

    streams = eventlog("streams", "--url", server.url)
    assert streams.returncode == 0, streams.stderr
    header, rule, *body = streams.stdout.splitlines()
    assert header.split() == [
        "STREAM",
        "FIRST",
        "NEXT",
        "EVENTS",
        "SIZE",
        "LAST",
        "APPEND",
        "RETENTION",
    ]
    assert set(rule) == {"─"}
    [row] = [line for line in body if line.startswith("h-table ")]
    assert row.split()[:6] == ["h-table", "0", "5", "5", "5", "bytes"]
    listed = msgspec.json.decode(eventlog("streams", "--url", server.url, "--json").stdout)
    assert {"name": "h-table", "next_offset": 5}.items() <= next(
        s for s in listed if s["name"] == "h-table"
    ).items()

    consumers = eventlog("consumers", "--url", server.url)
    assert consumers.returncode == 0, consumers.stderr
    header, _, *body = consumers.stdout.splitlines()
    assert header.split() == ["CONSUMER", "STREAM", "OFFSET", "LAG", "UPDATED"]
    [cells] = [line.split() for line in body if line.startswith("h-mailer ")]
    assert cells[:4] == ["h-mailer", "h-table", "2", "3"]
    as_json = msgspec.json.decode(eventlog("consumers", "--url", server.url, "--json").stdout)
    [mine] = [c for c in as_json if c["name"] == "h-mailer"]
    assert (mine["stream"], mine["offset"], mine["lag"]) == ("h-table", 2, 3)


def test_export_import_round_trip_to_another_stream_and_a_db_file(
    server: ServerThread, tmp_path: Path
) -> None:
    source = '{"type":"a","data":{"z": 1, "a": [true, null]},"key":"k","headers":{"h":"1"}}\n'
    source += "".join(f'{{"type":"b","data":{i}}}\n' for i in range(1500))
    assert eventlog("append", "--url", server.url, "h-src", input=source).returncode == 0
    exported = eventlog("export", "--url", server.url, "h-src")
    assert exported.returncode == 0
    assert exported.stderr == "eventlog: exported 1501 events from h-src\n"
    original = lines_json(exported.stdout)
    keep = ("id", "type", "key", "headers", "data")

    for detail in ("1501 new, 0 already present", "0 new, 1501 already present"):
        imported = eventlog("import", "--url", server.url, "h-copy", input=exported.stdout)
        assert imported.returncode == 0, imported.stderr
        assert imported.stderr == f"eventlog: imported 1501 events into h-copy ({detail})\n"
    copied = lines_json(eventlog("export", "--url", server.url, "h-copy").stdout)
    assert [{k: e[k] for k in keep} for e in copied] == [{k: e[k] for k in keep} for e in original]
    assert {e["stream"] for e in copied} == {"h-copy"}

    target = tmp_path / "offline.db"
    assert eventlog("import", "--db", str(target), "copy", input=exported.stdout).returncode == 0
    offline = eventlog("tail", "--db", str(target), "copy", "--from", "0")
    assert [{k: e[k] for k in keep} for e in lines_json(offline.stdout)] == [
        {k: e[k] for k in keep} for e in original
    ]
    assert '"data":{"z": 1, "a": [true, null]}' in offline.stdout.splitlines()[0]


def test_server_refusals_exit_1_with_the_servers_message(server: ServerThread) -> None:
    url = ["--url", server.url]
    empty_type = eventlog("append", *url, "h-err", '{"type":""}')
    assert empty_type.returncode == 1
    assert empty_type.stderr.startswith("eventlog: error: ")
    assert "(validation_error, HTTP 422)" in empty_type.stderr
    assert "type" in empty_type.stderr

    lines = '{"type":"ok"}\n{"type":"ok"}\n\n{"type":""}\n'
    located = eventlog("append", *url, "h-err", input=lines)
    assert located.returncode == 1
    assert "stdin line 4: " in located.stderr
    assert "HTTP 422" in located.stderr
    assert eventlog("tail", *url, "h-err").stdout == ""  # the batch was atomic

    huge = '{"type":"t","data":"' + "x" * (1 << 20) + '"}'
    too_big = eventlog("append", *url, "h-err", input=huge + "\n")
    assert too_big.returncode == 1
    assert "HTTP 413" in too_big.stderr

    missing = eventlog("tail", *url, "h-never")
    assert missing.returncode == 1
    assert "stream 'h-never' does not exist" in missing.stderr

    down = eventlog("streams", "--url", "http://127.0.0.1:9")
    assert down.returncode == 1
    assert "cannot reach the server at http://127.0.0.1:9" in down.stderr
    for result in (empty_type, located, too_big, missing, down):
        assert "Traceback" not in result.stderr


def test_api_key_from_option_or_environment(tmp_path: Path) -> None:
    key = "el_test-key-for-the-cli"
    keys = [{"name": "cli", "hash": hash_key(key), "scopes": ["append:k-*", "read:k-*"]}]
    env = {"EVENTLOG_API_KEYS": msgspec.json.encode(keys).decode()}
    with ServerThread.start(db=tmp_path / "auth.db", env=env) as secured:
        anonymous = eventlog("append", "--url", secured.url, "k-s", '{"type":"t"}')
        assert anonymous.returncode == 1
        assert "HTTP 401" in anonymous.stderr
        with_option = eventlog(
            "append", "--url", secured.url, "--api-key", key, "k-s", "-t", "t", "1"
        )
        assert (with_option.returncode, with_option.stdout) == (0, "0\n")
        out_of_scope = eventlog(
            "append", "--url", secured.url, "--api-key", key, "x-s", '{"type":"t"}'
        )
        assert out_of_scope.returncode == 1
        assert "HTTP 403" in out_of_scope.stderr
        from_env = eventlog(
            "tail", "k-s", env={"EVENTLOG_URL": secured.url, "EVENTLOG_API_KEY": key}
        )
        assert from_env.returncode == 0, from_env.stderr
        assert [e["data"] for e in lines_json(from_env.stdout)] == [1]


async def test_tail_skips_events_removed_by_retention_with_a_warning(
    server: ServerThread,
) -> None:
    eventlog("append", "--url", server.url, "h-trim", "-t", "n", input="0\n1\n2\n3\n4\n5\n")
    # Trim through the server's own database file, as its retention task would.
    async with EventLog.open(server.db) as log:
        await log.set_retention("h-trim", Retention(max_count=2))
        assert await log.enforce_retention() == 4
    tail = eventlog("tail", "--url", server.url, "h-trim", "--from", "1")
    assert tail.returncode == 0, tail.stderr
    assert [e["data"] for e in lines_json(tail.stdout)] == [4, 5]
    assert "offsets 1-3 were removed by retention" in tail.stderr


def test_tail_follow_outlives_a_server_restart(tmp_path: Path) -> None:
    with ServerThread.start(db=tmp_path / "restart.db") as own:
        eventlog("append", "--url", own.url, "r-s", '{"type":"before"}')
        with subprocess.Popen(
            [EVENTLOG, "tail", "--url", own.url, "r-s", "-f", "--from", "beginning"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
            preexec_fn=default_sigint,
        ) as proc:
            try:
                assert proc.stdout is not None
                assert proc.stderr is not None
                assert msgspec.json.decode(proc.stdout.readline())["type"] == "before"
                own.restart()  # graceful stop, then a new server on the same port and file
                after = eventlog("append", "--url", own.url, "r-s", '{"type":"after"}')
                assert after.stdout == "1\n"
                event = msgspec.json.decode(proc.stdout.readline())
                assert (event["offset"], event["type"]) == (1, "after")
                assert stop_with(proc, signal.SIGTERM, scaled(15)) == 0
                warnings = proc.stderr.read().decode()
                assert "; retrying" in warnings
                assert "reconnected; following r-s from offset 1" in warnings
            finally:
                if proc.poll() is None:
                    proc.kill()


def test_consumers_show_and_replay_parked_of_a_shared_consumer(server: ServerThread) -> None:
    url = server.url
    eventlog("append", "--url", url, "s-mail", "-t", "mail.send", input="1\n2\n")
    spec = {"stream": "s-mail", "ack_wait": 0.1, "max_deliver": 1}
    assert httpx.put(f"{url}/api/consumers/s-mailer/shared", json=spec).status_code == 200

    def claim() -> list[int]:
        r = httpx.post(f"{url}/api/consumers/s-mailer/claim", json={"worker": "w1", "max": 1})
        return [c["offset"] for c in r.json()["claims"]]

    assert claim() == [0]
    time.sleep(0.3)  # the claim lapses: handed out max_deliver times, 0 is parked
    assert claim() == [1]

    show = eventlog("consumers", "show", "s-mailer", "--url", url)
    assert show.returncode == 0, show.stderr
    lines = show.stdout.splitlines()
    assert lines[:2] == [
        "consumer  s-mailer",
        "state     shared: workers claim its events (ack_wait 0.1 s, max_deliver 1)",
    ]
    assert lines[2].startswith("claims    0 pending, 1 claimed; ack floor 1 of head 2; oldest")
    assert lines[3:] == ["parked    1 in s-mailer.parked", "stream    s-mail: offset 1, lag 1"]
    detail = msgspec.json.decode(
        eventlog("consumers", "show", "s-mailer", "--url", url, "--json").stdout
    )
    assert (detail["shared"]["claimed"], detail["shared"]["parked"]) == (1, 1)

    replay = eventlog("consumers", "replay-parked", "s-mailer", "--url", url)
    assert replay.returncode == 1
    assert replay.stderr.strip() == (
        "eventlog: error: consumer 's-mailer' is shared: no handler runs it to replay to. Its "
        "parked events are the stream 's-mailer.parked': read them there, or declare a shared "
        "consumer on 's-mailer.parked' for workers to claim them (consumer_conflict, HTTP 409)"
    )

    seek = {"stream": "s-mail", "position": 1}
    assert httpx.put(f"{url}/api/consumers/s-plain", json=seek).status_code == 200
    plain = eventlog("consumers", "show", "s-plain", "--url", url, "--json")
    assert msgspec.json.decode(plain.stdout)["shared"] is None
    shown = eventlog("consumers", "show", "s-plain", "--url", url).stdout
    assert "state     not running in this server" in shown.splitlines()
