"""TLS: ``eventlog serve --ssl-certfile/--ssl-keyfile`` serves HTTPS and ``wss://``.

A throwaway certificate authority from ``trustme`` signs a certificate for
127.0.0.1; clients trust only that authority.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
import pytest
import trustme
import websockets

from server.config import load_config
from tests.serverproc import ROOT, ServerProcess
from tests.support import scaled


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pem_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` for 127.0.0.1, signed by ``ca``."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return cert_file, key_file


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


def _serve(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``eventlog serve`` expecting it to refuse before it binds anything."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli.serve", "serve", "--port", "0", "--db", str(db), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=False,
    )


def _healthz(server: ServerProcess, context: ssl.SSLContext) -> int:
    with httpx.Client(verify=context, timeout=scaled(5)) as http:
        return http.get(f"{server.url}/healthz").status_code


async def test_https_append_reaches_a_wss_firehose_client(
    tmp_path: Path, pem_files: tuple[Path, Path], client_context: ssl.SSLContext
) -> None:
    cert, key = pem_files
    args = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with ServerProcess.start(tmp_path / "events.db", extra_args=args, tls=client_context) as server:
        assert server.url.startswith("https://")
        async with httpx.AsyncClient(verify=client_context, timeout=scaled(10)) as http:
            events_url = f"{server.url}/api/streams/orders/events"
            first = await http.post(events_url, json={"type": "order.created", "data": {"n": 0}})
            assert first.status_code == 201, first.text  # the stream exists from here on
            url = f"{server.ws_url}/api/streams/orders/firehose?from=beginning"
            async with websockets.connect(url, ssl=client_context) as ws:
                caught_up = msgspec.json.decode(await asyncio.wait_for(ws.recv(), scaled(10)))
                live = await http.post(events_url, json={"type": "order.paid", "data": {"n": 1}})
                assert live.status_code == 201, live.text
                event = msgspec.json.decode(await asyncio.wait_for(ws.recv(), scaled(10)))
        assert (caught_up["offset"], caught_up["type"]) == (0, "order.created")
        assert (event["stream"], event["offset"], event["type"]) == ("orders", 1, "order.paid")
        assert event["data"] == {"n": 1}


def test_plain_http_to_a_tls_server_gets_no_answer(
    tmp_path: Path, pem_files: tuple[Path, Path], client_context: ssl.SSLContext
) -> None:
    cert, key = pem_files
    args = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with ServerProcess.start(tmp_path / "events.db", extra_args=args, tls=client_context) as server:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=scaled(5))
        untrusting = httpx.Client(verify=True, timeout=scaled(5))  # system CAs only
        with untrusting, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.get(f"{server.url}/healthz")


def test_tls_options_come_from_the_environment_too(
    tmp_path: Path, pem_files: tuple[Path, Path], client_context: ssl.SSLContext
) -> None:
    cert, key = pem_files
    env = {"EVENTLOG_SSL_CERTFILE": str(cert), "EVENTLOG_SSL_KEYFILE": str(key)}
    with ServerProcess.start(tmp_path / "events.db", env=env, tls=client_context) as server:
        assert _healthz(server, client_context) == 200


def test_tls_options_come_from_the_config_file_too(
    tmp_path: Path, pem_files: tuple[Path, Path], client_context: ssl.SSLContext
) -> None:
    cert, key = pem_files
    config = tmp_path / "eventlog.toml"
    config.write_text(f'ssl_certfile = "{cert}"\nssl_keyfile = "{key}"\n')
    args = ["--config", str(config)]
    with ServerProcess.start(tmp_path / "events.db", extra_args=args, tls=client_context) as server:
        assert _healthz(server, client_context) == 200


def test_encrypted_key_with_its_password(
    tmp_path: Path, ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    from cryptography.hazmat.primitives import serialization

    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    private = serialization.load_pem_private_key(issued.private_key_pem.bytes(), password=None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    args = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    wrong = _serve(tmp_path / "a.db", *args, "--ssl-keyfile-password", "nope")
    assert wrong.returncode == 2
    assert "cannot load the TLS certificate" in wrong.stderr
    env = {"EVENTLOG_SSL_KEYFILE_PASSWORD": "s3cret"}
    with ServerProcess.start(tmp_path / "b.db", extra_args=args, env=env, tls=client_context) as s:
        assert _healthz(s, client_context) == 200


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("cert-only", "ssl_certfile is set but ssl_keyfile is not: TLS needs both"),
        ("key-only", "ssl_keyfile is set but ssl_certfile is not: TLS needs both"),
        ("missing-cert", "cannot read ssl_certfile"),
        ("swapped", "cannot load the TLS certificate"),
    ],
)
def test_bad_tls_options_exit_2_with_one_line(
    tmp_path: Path, pem_files: tuple[Path, Path], which: str, message: str
) -> None:
    cert, key = pem_files
    args = {
        "cert-only": ["--ssl-certfile", str(cert)],
        "key-only": ["--ssl-keyfile", str(key)],
        "missing-cert": ["--ssl-certfile", str(tmp_path / "nope.pem"), "--ssl-keyfile", str(key)],
        "swapped": ["--ssl-certfile", str(key), "--ssl-keyfile", str(cert)],
    }[which]
    result = _serve(tmp_path / "events.db", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("eventlog serve: ")
    assert message in lines[0]
    assert not (tmp_path / "events.db").exists()  # refused before opening anything


def test_optional_scalar_options_are_plain_strings_in_the_environment() -> None:
    env = {"EVENTLOG_SSL_CERTFILE": "/etc/cert.pem", "EVENTLOG_RETENTION_MAX_HOLD": "60"}
    config = load_config(environ=env)
    assert config.ssl_certfile == "/etc/cert.pem"
    assert config.retention_max_hold == 60.0
