"""Pure parts of the server, without a server: config layers, scopes, parsing, log lines."""

from __future__ import annotations

import re
import time
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLogError
from eventlog.encoding import CheckedJSON
from server.api.append_body import apply_idempotency_key, media_type, parse_body
from server.api.params import non_negative_int, wait_seconds
from server.auth import Authenticator, hash_key, new_key, parse_scope
from server.config import ApiKey, ConfigError, env_layer, load_config
from server.errors import status_for
from server.middleware import correlation_id_from, format_line
from server.serve import is_loopback

# -- config -------------------------------------------------------------------------


def test_config_defaults_are_loopback_7432_and_cwd_database() -> None:
    config = load_config()
    assert (config.host, config.port, config.db) == ("127.0.0.1", 7432, "eventlog.db")
    assert config.api_keys == []
    assert config.insecure is False


def test_config_precedence_is_defaults_file_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 8000\ndb = "file.db"\nlog_format = "json"\nmax_wait = 5.0\n')
    env = {"EVENTLOG_PORT": "8001", "EVENTLOG_DB": "env.db", "UNRELATED": "x"}
    config = load_config(file=toml, environ=env, flags={"port": 8002, "db": None})
    assert config.port == 8002  # flag beats env
    assert config.db == "env.db"  # env beats file; a None flag is "not given"
    assert config.log_format == "json"  # file beats default
    assert config.max_wait == 5.0
    assert config.host == "127.0.0.1"  # default


def test_env_values_are_converted_and_lists_are_json() -> None:
    key = {"name": "ci", "hash": hash_key("k"), "scopes": ["admin"]}
    env = {
        "EVENTLOG_INSECURE": "true",
        "EVENTLOG_MAX_BODY_BYTES": "1024",
        "EVENTLOG_API_KEYS": msgspec.json.encode([key]).decode(),
        "EVENTLOG_TEST_TIMEOUT_SCALE": "3",  # not a config field: ignored
    }
    config = load_config(environ=env)
    assert config.insecure is True
    assert config.max_body_bytes == 1024
    assert config.api_keys == [ApiKey(name="ci", hash=hash_key("k"), scopes=["admin"])]


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"port": "seven"}, "port"),
        ({"port": 70000}, "port must be between"),
        ({"bogus": 1}, "bogus"),
        ({"log_format": "xml"}, "log_format"),
    ],
)
def test_invalid_config_names_the_field(layer: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(flags=layer)


def test_invalid_config_names_where_the_value_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as env:
        load_config(environ={"EVENTLOG_PORT": "abc"})
    assert str(env.value).startswith("invalid configuration: EVENTLOG_PORT: Expected `int`")
    with pytest.raises(ConfigError, match=r"EVENTLOG_ACCESS_LOG: .*\(use true or false\)"):
        load_config(environ={"EVENTLOG_ACCESS_LOG": "no"})
    config = tmp_path / "eventlog.toml"
    config.write_text("port = 'high'\n")
    with pytest.raises(ConfigError, match=f"port in {re.escape(str(config))}: "):
        load_config(file=config)
    with pytest.raises(ConfigError, match="--max-body-bytes: "):  # flags win over the file
        load_config(file=config, flags={"max_body_bytes": "x", "port": 1})
    targets = '{"targets": [{"kind": "discord", "url": "http://chat.test/hooks/tok-hunter2"}]}'
    with pytest.raises(ConfigError) as secret:  # values are never echoed: they may be secrets
        load_config(environ={"EVENTLOG_NOTIFICATIONS": targets})
    assert str(secret.value).startswith("invalid configuration: EVENTLOG_NOTIFICATIONS: ")
    assert "hunter2" not in str(secret.value)


def test_bad_config_file_and_env_json_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(file=bad)
    with pytest.raises(ConfigError, match="must be JSON"):
        env_layer({"EVENTLOG_API_KEYS": "[{"})


# -- auth ---------------------------------------------------------------------------


def test_scopes_parse_and_reject_garbage() -> None:
    assert parse_scope("append:orders.*") == ("append", "orders.*")
    assert parse_scope("read:*") == ("read", "*")
    assert parse_scope("admin") == ("admin", "*")
    for bad in ("write:x", "append:", "append", "", "admin:x"):
        with pytest.raises(ConfigError):
            parse_scope(bad)


def test_authenticator_401_403_and_globs() -> None:
    writer, reader = new_key(), new_key()
    assert writer != reader
    auth = Authenticator(
        [
            ApiKey(name="w", hash=hash_key(writer), scopes=["append:orders.*"]),
            ApiKey(name="r", hash=hash_key(reader), scopes=["read:*"]),
        ]
    )
    assert auth.enabled
    grant = auth.check(writer, "append", "orders.eu")
    assert grant is not None
    assert grant.name == "w"
    for token, action, stream, status in [
        (None, "append", "orders.eu", 401),
        ("", "read", None, 401),
        ("wrong", "read", None, 401),
        (writer, "append", "orders", 403),  # glob orders.* needs the dot
        (writer, "read", "orders.eu", 403),
        (reader, "append", "x", 403),
        (reader, "admin", None, 403),
    ]:
        with pytest.raises(EventLogError) as info:
            auth.check(token, action, stream)  # type: ignore[arg-type]
        assert status_for(info.value) == status
    assert auth.check(reader, "read", "anything") is not None
    assert Authenticator([]).check(None, "admin") is None


def test_authenticator_rejects_malformed_hashes() -> None:
    with pytest.raises(ConfigError, match="sha256"):
        Authenticator([ApiKey(name="x", hash="plaintext-key")])


# -- request parsing -----------------------------------------------------------------


def test_media_type_ignores_parameters_and_case() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""


def test_parse_body_keeps_data_bytes_verbatim() -> None:
    parsed = parse_body(b'{"type":"t","data": [1, 2.50 ]}', "application/json", max_events=10)
    assert parsed.single
    data = parsed.events[0].data
    assert isinstance(data, CheckedJSON)  # decoded and checked: the log stores it as it is
    assert data.value == b"[1, 2.50 ]"


def test_parse_body_batch_limit_and_ndjson_paths() -> None:
    with pytest.raises(EventLogError) as info:
        parse_body(b'[{"type":"a"},{"type":"b"}]', "application/json", max_events=1)
    assert (status_for(info.value), info.value.code) == (422, "batch_too_large")
    with pytest.raises(EventLogError) as info:
        parse_body(b'{"type":"a"}\n\n{"type":"b","x":1}\n', "application/x-ndjson", max_events=9)
    assert info.value.json_path == "$[1]"


def test_idempotency_key_single_and_batch() -> None:
    single = parse_body(b'{"type":"a"}', "application/json", max_events=9)
    assert apply_idempotency_key(single, "k1")[0].id == "k1"
    assert apply_idempotency_key(single, None)[0].id is None
    batch = parse_body(b'[{"type":"a","id":"own"},{"type":"b"}]', "application/json", max_events=9)
    assert [e.id for e in apply_idempotency_key(batch, "k2")] == ["own", "k2.1"]
    with pytest.raises(EventLogError):
        apply_idempotency_key(single, "x" * 201)


def test_query_parameters() -> None:
    assert non_negative_int({}, "from", 0) == 0
    assert non_negative_int({"from": "12"}, "from", 0) == 12
    for bad in ("-1", "1.0", " 1", "0x1", "²", "1" * 20):
        with pytest.raises(EventLogError):
            non_negative_int({"from": bad}, "from", 0)
    with pytest.raises(EventLogError):
        non_negative_int({"limit": "11"}, "limit", 1, maximum=10)
    assert wait_seconds({"wait": "2.5"}, 60) == 2.5
    assert wait_seconds({"wait": "5s"}, 60) == 5
    assert wait_seconds({"wait": "600"}, 60) == 60  # capped
    for bad in ("-0.1", "nan", "inf", "x", "١"):
        with pytest.raises(EventLogError):
            wait_seconds({"wait": bad}, 60)


# -- middleware helpers ----------------------------------------------------------------


def test_correlation_id_sources() -> None:
    assert correlation_id_from({"x-correlation-id": "abc-1"}) == "abc-1"
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert correlation_id_from({"traceparent": trace}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    # unsafe or malformed values are replaced by a generated id
    generated = correlation_id_from({"x-correlation-id": "a b\n", "traceparent": "garbage"})
    assert len(generated) == 32
    assert generated != correlation_id_from({})
    zero = "00-" + "0" * 32 + "-00f067aa0ba902b7-01"
    assert correlation_id_from({"traceparent": zero}) != "0" * 32


def test_log_lines_json_and_key_value() -> None:
    fields = {"method": "GET", "path": "/a b", "status": 200, "msg": 'say "hi"'}
    assert msgspec.json.decode(format_line(fields, "json")) == fields
    assert format_line(fields, "kv") == 'method=GET path="/a b" status=200 msg="say \\"hi\\""'
    assert format_line({"x": ""}, "kv") == 'x=""'


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.4")
    assert not is_loopback("example.com")


def test_openapi_document_matches_the_wire_structs_and_routes() -> None:
    from server.api import append_body, consumers, streams, system
    from server.api.docs_page import docs_html
    from server.api.openapi import openapi_document

    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    wire = {f.name for f in msgspec.structs.fields(append_body.EventIn)}
    assert set(schemas["EventIn"]["properties"]) == wire
    assert set(schemas["Event"]["properties"]) == {
        "stream",
        "offset",
        "id",
        "type",
        "key",
        "time",
        "headers",
        "data",
    }
    for route in streams.routes + consumers.routes + system.routes:
        path = getattr(route, "path", "")
        if path not in ("/openapi.json", "/docs"):
            methods = {m.lower() for m in getattr(route, "methods", set())} - {"head"}
            assert methods <= set(doc["paths"][path]), path
    page = docs_html()
    assert "POST</span> <code>/api/streams/{stream}/events</code>" in page


def test_access_line_matches_format_line_in_both_formats() -> None:
    from server.middleware import access_line

    fields: dict[str, object] = {
        "method": "POST",
        "path": "/api/streams/a b/events",
        "route": "/api/streams/{stream}/events",
        "status": 201,
        "ms": 1.25,
        "cid": "req-1",
        "client": "127.0.0.1:5000",
    }
    for fmt in ("kv", "json"):
        line = access_line(fmt, **fields)  # type: ignore[arg-type]
        if fmt == "json":
            decoded = msgspec.json.decode(line)
            assert decoded.pop("time").endswith("Z")
            assert decoded == fields
        else:
            time_part, rest = line.split(" ", 1)
            assert time_part.startswith("time=")
            assert rest == format_line(fields, "kv")
            assert 'path="/api/streams/a b/events"' in rest


async def test_buffered_line_writer_writes_lines_together_after_its_interval() -> None:
    import asyncio
    import io

    from server.middleware import BufferedLineWriter

    class Counting(io.StringIO):
        writes = 0

        def write(self, s: str) -> int:
            self.writes += 1
            return super().write(s)

    stream = Counting()
    writer = BufferedLineWriter(stream, interval=0.02, max_lines=5)
    for i in range(3):
        writer(f"line {i}")
    await asyncio.sleep(0)
    assert stream.getvalue() == ""
    await asyncio.sleep(0.1)
    assert stream.getvalue() == "line 0\nline 1\nline 2\n"
    assert stream.writes == 1
    for i in range(5):  # max_lines reached: written at once
        writer(f"more {i}")
    assert stream.getvalue().endswith("more 4\n")
    assert stream.writes == 2
    writer("last")
    writer.flush()  # what the server does on exit
    assert stream.getvalue().endswith("more 4\nlast\n")
    await asyncio.sleep(0.05)
    assert stream.writes == 3


def test_loop_histogram_renders_like_prometheus_histogram() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from server.loopmetrics import LoopHistogram

    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = LoopHistogram("x_seconds", "doc", [0.1, 1, 2.5])
    ours_registry.register(ours)
    theirs = Histogram("x_seconds", "doc", buckets=[0.1, 1, 2.5], registry=theirs_registry)
    for value in (0.05, 0.1, 0.5, 1, 3, 2.5, 0):
        ours.observe(value)
        theirs.observe(value)
    expected = [
        line
        for line in generate_latest(theirs_registry).decode().splitlines()
        if "_created" not in line
    ]
    assert generate_latest(ours_registry).decode().splitlines() == expected
    with pytest.raises(ValueError, match="ascending"):
        LoopHistogram("y", "doc", [2, 1])


async def test_body_deadlines_cancel_only_reads_past_their_deadline() -> None:
    import asyncio

    from server.middleware import BodyDeadlines

    deadlines = BodyDeadlines(tick=0.01)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, str] = {}

    async def read(name: str, wait: float, allowed: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadlines.start(task, loop.time() + allowed, loop)
        try:
            await asyncio.sleep(wait)
            outcomes[name] = "read"
        except asyncio.CancelledError:
            outcomes[name] = "expired" if deadlines.stop(task) else "cancelled"
        finally:
            deadlines.stop(task)

    started = loop.time()
    slow = asyncio.create_task(read("slow", 10, 0.05))
    quick = asyncio.create_task(read("quick", 0.01, 1))
    other = asyncio.create_task(read("other", 10, 5))
    await asyncio.gather(slow, quick)
    assert loop.time() - started < 1
    other.cancel()  # a cancel that is not the deadline's
    await asyncio.gather(other, return_exceptions=True)
    assert outcomes == {"slow": "expired", "quick": "read", "other": "cancelled"}


async def test_a_long_poll_during_shutdown_is_503_not_an_empty_page(tmp_path: Path) -> None:
    """A follower (``eventlog tail -f``) backs off on 503; an empty 200 would
    have it poll again at once, in a loop, for as long as the shutdown lasts."""
    import httpx

    from eventlog import EventLog
    from server.app import create_app
    from server.config import ServerConfig

    async with EventLog.open(tmp_path / "e.db") as log:
        await log.append("s", 1, type="t")
        app = create_app(log, ServerConfig(access_log=False))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            served = await client.get("/api/streams/s/events", params={"from": 0, "wait": 5})
            assert served.status_code == 200
            assert len(served.json()["events"]) == 1
            app.state.stopping.set()
            started = time.monotonic()
            r = await client.get("/api/streams/s/events", params={"from": 1, "wait": 5})
            assert time.monotonic() - started < 2
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "shutting_down"
            page = await client.get("/api/streams/s/events", params={"from": 0})
            assert page.status_code == 200  # plain reads are still served
